//! The daemon's bearer token: where it comes from, and how a request's token is checked.
//!
//! The token is read from a file (`--token-file`) or the `SLUICE_TOKEN` environment variable,
//! never from argv, where `ps` and shell history would show it. Comparison is constant-time, so
//! response timing says nothing about how much of a guess was right.

use std::path::Path;

use subtle::ConstantTimeEq;

/// The environment variable the daemon and `sluice runs` read the token from.
pub const TOKEN_ENV: &str = "SLUICE_TOKEN";

/// Shorter tokens are refused: the API can send traffic, so a guessable token is no protection.
pub const MIN_TOKEN_LEN: usize = 16;
/// A token file longer than this is not a token file.
const TOKEN_FILE_BYTES: u64 = 4096;

/// A loaded token. `Debug` never shows it.
#[derive(Clone)]
pub struct Token(Vec<u8>);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(…)")
    }
}

/// Where the token came from, for the start-up message (never the token itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    File,
    Env,
}

impl Token {
    pub fn new(text: &str) -> Result<Token, String> {
        // A trailing newline is what editors and `echo` leave in a token file; it is not part of it.
        let text = text.trim_end_matches(['\r', '\n']);
        if text.len() < MIN_TOKEN_LEN {
            return Err(format!("the token is shorter than {MIN_TOKEN_LEN} characters; use a long random one"));
        }
        if text.bytes().any(|b| !b.is_ascii_graphic()) {
            return Err("the token may only contain printable ASCII without spaces (it travels in a header)".into());
        }
        Ok(Token(text.as_bytes().to_vec()))
    }

    /// `--token-file` wins over `SLUICE_TOKEN`: a file is the deliberate choice (systemd's
    /// credentials, a secrets mount), the environment may be inherited by accident.
    pub fn load(file: Option<&Path>, env: Option<String>) -> Result<Option<(Token, TokenSource)>, String> {
        if let Some(path) = file {
            // A token is a line; a mistaken path (a log, /dev/zero) is refused, not read whole.
            let text = crate::config::read_small_file(path, TOKEN_FILE_BYTES)
                .map_err(|e| format!("--token-file {}: {e}", path.display()))?;
            return Token::new(&text).map(|t| Some((t, TokenSource::File))).map_err(|m| format!("--token-file: {m}"));
        }
        match env {
            Some(text) if !text.is_empty() => {
                Token::new(&text).map(|t| Some((t, TokenSource::Env))).map_err(|m| format!("{TOKEN_ENV}: {m}"))
            }
            _ => Ok(None),
        }
    }

    /// Checks an `Authorization` header value (`Bearer <token>`) in constant time.
    pub fn accepts(&self, authorization: &[u8]) -> bool {
        let Some(given) = strip_bearer(authorization) else {
            return false;
        };
        // `ct_eq` on slices of different lengths is false without looking at the bytes; the
        // length of the token is not a secret worth hiding.
        bool::from(self.0.as_slice().ct_eq(given))
    }
}

fn strip_bearer(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at_checked(7)?;
    scheme.eq_ignore_ascii_case(b"bearer ").then(|| rest.trim_ascii())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_compared_exactly() {
        let token = Token::new("0123456789abcdef-xyz\n").unwrap();
        assert!(token.accepts(b"Bearer 0123456789abcdef-xyz"));
        assert!(token.accepts(b"bearer 0123456789abcdef-xyz"));
        assert!(!token.accepts(b"Bearer 0123456789abcdef-xy"));
        assert!(!token.accepts(b"Bearer 0123456789abcdef-xyzz"));
        assert!(!token.accepts(b"Basic 0123456789abcdef-xyz"));
        assert!(!token.accepts(b"0123456789abcdef-xyz"));
        assert!(!token.accepts(b""));
    }

    #[test]
    fn weak_or_odd_tokens_are_refused() {
        assert!(Token::new("short").is_err());
        assert!(Token::new("has a space in the middle").is_err());
        assert!(format!("{:?}", Token::new("0123456789abcdef").unwrap()).contains('…'));
    }

    #[test]
    fn the_file_wins_over_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "from-the-file-0123456789\n").unwrap();
        let (token, source) = Token::load(Some(&path), Some("from-the-env-0123456789".into())).unwrap().unwrap();
        assert_eq!(source, TokenSource::File);
        assert!(token.accepts(b"Bearer from-the-file-0123456789"));
        let (_, source) = Token::load(None, Some("from-the-env-0123456789".into())).unwrap().unwrap();
        assert_eq!(source, TokenSource::Env);
        assert!(Token::load(None, Some(String::new())).unwrap().is_none());
        assert!(Token::load(None, None).unwrap().is_none());
        assert!(Token::load(Some(&dir.path().join("missing")), None).is_err());
        // A mistaken path (here, a big file) is refused before it is read whole.
        std::fs::write(&path, "x".repeat(TOKEN_FILE_BYTES as usize + 1)).unwrap();
        let refused = Token::load(Some(&path), None).unwrap_err();
        assert!(refused.contains("longer than 4096 bytes"), "{refused}");
    }
}
