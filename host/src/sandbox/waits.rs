//! The wall-clock half of the deadline. Epoch interruption stops only wasm code; a guest that
//! waits inside WASI (`monotonic-clock.subscribe-duration` then `pollable.block`, or `poll`)
//! sits in a host call the epoch never sees. The two WASI calls that can wait are redefined
//! here to give up at the call's deadline with [`WaitedPastDeadline`], which the sandbox
//! reports as the deadline it is. Nothing else the context grants can wait: stdin is closed,
//! stdout and stderr are memory pipes, and there are no sockets or files.

use std::time::Instant;

use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, Resource};
use wasmtime_wasi::p2::DynPollable;
use wasmtime_wasi::p2::bindings::io::poll::{Host as _, HostPollable as _};
use wasmtime_wasi::runtime::in_tokio;

use super::GuestState;

/// The `wasi:io/poll` that `wasmtime_wasi::p2::add_to_linker_sync` defines; a guest's import
/// of any 0.2.x version resolves to it.
const POLL_INTERFACE: &str = "wasi:io/poll@0.2.12";

/// A WASI wait reached the call's deadline.
#[derive(Debug, thiserror::Error)]
#[error("the component waited in WASI past its deadline")]
pub struct WaitedPastDeadline;

/// Replaces the waiting functions of `wasi:io/poll` with ones bounded by the call's deadline.
pub fn bound_waits(linker: &mut Linker<GuestState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut poll = linker.instance(POLL_INTERFACE)?;
    poll.func_wrap(
        "[method]pollable.block",
        |mut store: StoreContextMut<'_, GuestState>, (pollable,): (Resource<DynPollable>,)| {
            let state = store.data_mut();
            let deadline = state.deadline;
            until(deadline, state.table.block(pollable))
        },
    )?;
    poll.func_wrap(
        "poll",
        |mut store: StoreContextMut<'_, GuestState>, (pollables,): (Vec<Resource<DynPollable>>,)| {
            let state = store.data_mut();
            let deadline = state.deadline;
            until(deadline, state.table.poll(pollables)).map(|ready| (ready,))
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

/// Runs a WASI wait to completion or until `deadline`, whichever comes first.
fn until<R>(deadline: Instant, wait: impl Future<Output = wasmtime::Result<R>>) -> wasmtime::Result<R> {
    in_tokio(async { tokio::time::timeout_at(deadline.into(), wait).await })
        .map_err(|_| wasmtime::Error::new(WaitedPastDeadline))?
}
