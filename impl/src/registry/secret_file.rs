//! The secret file of a `sealed` cell: the volume's 32-byte secret as 64 hexadecimal digits
//! (surrounding whitespace ignored), readable by its owner only.

use crate::storage::secret::VolumeSecret;
use std::io::Read;
use std::path::Path;

/// Largest secret file read (64 digits and some whitespace; anything larger is not ours).
const SECRET_FILE_SIZE_MAX_BYTES: u64 = 1024;

/// Reads and checks a secret file; the error is one line for a `ConfigError`.
pub fn read_secret_file(path: &Path) -> Result<VolumeSecret, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let meta = file.metadata().map_err(|e| format!("{}: {e}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(format!(
                "{}: readable by group or others (mode {mode:o}); `chmod 600` it",
                path.display()
            ));
        }
    }
    let mut text = String::new();
    file.take(SECRET_FILE_SIZE_MAX_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let digits = text.trim();
    let mut bytes = [0u8; 32];
    let ok = digits.len() == 64 && hex::decode_to_slice(digits, &mut bytes).is_ok();
    if !ok || meta.len() > SECRET_FILE_SIZE_MAX_BYTES {
        return Err(format!("{}: must hold exactly 64 hexadecimal digits", path.display()));
    }
    Ok(VolumeSecret::from_bytes(bytes))
}
