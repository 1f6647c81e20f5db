//! Content hashing, shared by the store (content-addressed blobs), the sandbox (component
//! digests) and the API (key fingerprints), so none of them reaches into another for it.

use sha2::{Digest, Sha256};

/// Lower-case hex sha256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}
