//! The stable error codes: one enum, shared with the edge component, in
//! [`resizer_core::codes`]; the tests here tie it to the host's errors and the README.

pub use resizer_core::codes::Code;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for &code in Code::ALL {
            assert_eq!(Code::parse(code.as_str()), Some(code));
            assert!(seen.insert(code.as_str()), "{code} twice");
            assert!(!code.description().is_empty(), "{code} has no description");
        }
    }

    /// The sandbox reports an image's error with the code resizer-core gives it.
    #[test]
    fn image_error_codes_match_resizer_core() {
        use crate::sandbox::SandboxError;
        let errors = [
            resizer_core::Error::UnsupportedFormat(String::new()),
            resizer_core::Error::MalformedImage(String::new()),
            resizer_core::Error::TooLarge {
                width: 1,
                height: 1,
                max_pixels: 0,
            },
            resizer_core::Error::InvalidOptions(String::new()),
            resizer_core::Error::Internal(String::new()),
        ];
        for e in errors {
            let code = e.code();
            assert_eq!(SandboxError::Image(e).code(), code);
        }
    }

    /// The README's error tables are checked against this enum: every code is documented, and
    /// every code the README names exists.
    #[test]
    fn readme_documents_every_code() {
        let readme = include_str!("../../README.md");
        for &code in Code::ALL {
            assert!(
                readme.contains(&format!("`{code}`")),
                "README.md does not document the error code `{code}`"
            );
        }
        let table = readme
            .split("<!-- codes -->")
            .nth(1)
            .and_then(|rest| rest.split("<!-- /codes -->").next())
            .expect("README.md has a <!-- codes --> table");
        let listed: Vec<&str> = table
            .lines()
            .filter_map(|row| row.split('|').nth(2))
            .map(|cell| cell.trim().trim_matches('`'))
            .filter(|cell| !cell.is_empty() && *cell != "code" && !cell.starts_with('-'))
            .collect();
        for code in &listed {
            assert!(
                Code::parse(code).is_some(),
                "README.md lists an unknown code `{code}`"
            );
        }
        assert_eq!(listed.len(), Code::ALL.len(), "README.md lists each code once");
    }
}
