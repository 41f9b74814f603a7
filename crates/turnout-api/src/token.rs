//! The API token: generated on the server's first start into the data dir,
//! readable by its owner only.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// The token file's name in the data dir.
pub const TOKEN_FILE: &str = "token";

/// The preview token's file in the data dir: the secret that
/// `X-Turnout-Preview-Token` must carry for `X-Turnout-Service` to pick a
/// service (DESIGN §8).
pub const PREVIEW_TOKEN_FILE: &str = "preview-token";

/// Reads the token from `data_dir`, creating it (mode 0600) on first use.
pub fn load_or_create_token(data_dir: &Path) -> std::io::Result<String> {
    load_or_create_secret(data_dir, TOKEN_FILE)
}

/// Reads the preview token from `data_dir`, creating it (mode 0600) on
/// first use.
pub fn load_or_create_preview_token(data_dir: &Path) -> std::io::Result<String> {
    load_or_create_secret(data_dir, PREVIEW_TOKEN_FILE)
}

/// Reads the secret in `data_dir/file`, creating it (mode 0600) on first
/// use.
fn load_or_create_secret(data_dir: &Path, file: &str) -> std::io::Result<String> {
    let path = data_dir.join(file);
    match std::fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => {
            // Tighten a token file someone loosened.
            let mode = std::fs::metadata(&path)?.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
            }
            return Ok(text.trim().to_string());
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let token = generate();
    std::fs::create_dir_all(data_dir)?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)?;
    writeln!(file, "{token}")?;
    file.sync_all()?;
    Ok(token)
}

fn generate() -> String {
    use rand::RngExt;
    let mut rng = rand::rng();
    (0..40)
        .map(|_| char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[rng.random_range(0..36)]))
        .collect()
}

/// Compares tokens in time independent of where they differ.
pub(crate) fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_is_created_once_with_mode_600() {
        let dir = std::env::temp_dir().join(format!("turnout-token-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let a = load_or_create_token(&dir).unwrap();
        assert_eq!(a.len(), 40);
        let mode = std::fs::metadata(dir.join(TOKEN_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(load_or_create_token(&dir).unwrap(), a);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn comparison() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "abcd"));
    }
}
