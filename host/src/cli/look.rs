//! The thumbnail options as flags: one `--NAME` per option of
//! [`resizer_core::request::OPTIONS`], with its help, default and check, so `thumb`, `batch`
//! and `sign` take exactly the API's names and values (`--width 400`, `--dpr 1.5`,
//! `--enlarge`), and each value is refused, as a usage error, where the API would refuse it.

use clap::parser::ValueSource;
use clap::{Arg, ArgMatches, Args, Command, FromArgMatches};
use resizer_core::request::{Accepts, Kind, Negotiated, OPTIONS, OptionDef, OptionError, Raw, Request};

/// The options given on the command line, as text; [`LookArgs::request`] checks them together.
#[derive(Debug, Clone, Default)]
pub struct LookArgs {
    pub raw: Raw,
}

impl LookArgs {
    /// The request, as the API would read the same names and values.
    pub fn request(&self) -> Result<Request, OptionError> {
        self.raw.parse()
    }

    /// The request made for a client without `Accept`, as the CLI is: `auto` gives JPEG, or
    /// PNG for images with alpha.
    pub fn negotiated(&self) -> Result<Negotiated, OptionError> {
        Ok(Negotiated::new(self.request()?, Accepts::default()))
    }
}

fn arg(def: &'static OptionDef) -> Arg {
    let mut help = def.help.to_string();
    if let Kind::Choice(words) = def.kind {
        help.push_str(&format!(" [possible values: {}]", words.join(", ")));
    }
    if let Some(default) = def.default {
        help.push_str(&format!(" [default: {default}]"));
    }
    let check = move |v: &str| -> Result<String, String> {
        (def.apply)(&mut Request::default(), v)
            .map(|()| v.to_string())
            .ok_or_else(|| def.error(v).to_string())
    };
    let arg = Arg::new(def.name).long(def.name).help(help).value_parser(check);
    match def.kind {
        // `--enlarge` alone means true; `--enlarge=false` is also taken.
        Kind::Bool => arg
            .num_args(0..=1)
            .require_equals(true)
            .default_missing_value("true"),
        _ => arg.value_name(def.name),
    }
}

impl Args for LookArgs {
    fn augment_args(cmd: Command) -> Command {
        OPTIONS.iter().fold(cmd, |cmd, def| cmd.arg(arg(def)))
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}

impl FromArgMatches for LookArgs {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut raw = Raw::default();
        for def in OPTIONS {
            if matches.value_source(def.name) == Some(ValueSource::CommandLine)
                && let Some(value) = matches.get_one::<String>(def.name)
            {
                raw.set(def.name, value.clone());
            }
        }
        Ok(LookArgs { raw })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}
