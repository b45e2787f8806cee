//! File operations confined to one root directory.
//!
//! Every path a client sends is interpreted *inside* the root: `/tmp/a.txt` and `tmp/a.txt`
//! both mean `ROOT/tmp/a.txt`, so the runbook's absolute paths work without touching the
//! host's real `/tmp`. A path that would leave the root, lexically (`..`) or through a
//! symbolic link, is refused.
//!
//! The operations are synchronous on purpose: the server runs them on Tokio's blocking pool,
//! which keeps this module simple and unit-testable without a runtime.

use std::ffi::OsString;
use std::fs;
use std::io::{self, ErrorKind};
use std::path::{Component, Path, PathBuf};

/// Largest file `read_file` returns: the whole text goes into one JSON-RPC message, and a
/// demo server must not be talked into loading an arbitrarily large file into memory.
pub const MAX_READ_BYTES: u64 = 8 * 1024 * 1024;

/// Why a tool call failed. The `Display` text is what the client sees (as an `isError`
/// result), so it names the path as the client wrote it, never the host path of the root.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error("refused: {0:?} is outside the server's root directory")]
    Escape(String),
    #[error("refused: {0:?} goes through a symbolic link whose target does not exist")]
    BrokenLink(String),
    #[error("invalid path {path:?}: {reason}")]
    InvalidPath { path: String, reason: &'static str },
    #[error("{0:?} does not exist")]
    NotFound(String),
    #[error("{0:?} is a directory")]
    IsADirectory(String),
    #[error("{0:?} is not a directory")]
    NotADirectory(String),
    #[error("{0:?} is not UTF-8 text")]
    NotText(String),
    #[error("{path:?} is {size} bytes, more than the {MAX_READ_BYTES}-byte read limit")]
    TooLarge { path: String, size: u64 },
    #[error("{op} {path:?} failed: {source}")]
    Io { op: &'static str, path: String, source: io::Error },
    #[error("internal error: {0}")]
    Internal(String),
}

impl ToolError {
    /// Maps an I/O error on `path` to the most specific variant, so common failures read
    /// naturally ("does not exist") instead of as raw OS messages.
    fn io(op: &'static str, path: &str, source: io::Error) -> Self {
        let path = path.to_owned();
        match source.kind() {
            ErrorKind::NotFound => Self::NotFound(path),
            ErrorKind::IsADirectory => Self::IsADirectory(path),
            ErrorKind::NotADirectory => Self::NotADirectory(path),
            _ => Self::Io { op, path, source },
        }
    }
}

/// A root directory and the operations allowed inside it.
#[derive(Debug, Clone)]
pub struct Sandbox {
    /// Canonical (absolute, symlink-free) path of the root; containment checks compare
    /// canonical paths against it.
    root: PathBuf,
}

impl Sandbox {
    /// Opens `root`, creating it if missing so a demo can point at a fresh directory.
    pub fn open(root: &Path) -> io::Result<Self> {
        fs::create_dir_all(root)?;
        let root = fs::canonicalize(root)?;
        if !root.is_dir() {
            return Err(io::Error::new(ErrorKind::NotADirectory, format!("{} is not a directory", root.display())));
        }
        Ok(Self { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Writes `content` to `path`, creating missing parent directories.
    pub fn write_file(&self, path: &str, content: &str) -> Result<String, ToolError> {
        let target = self.resolve(path)?;
        if target == self.root {
            return Err(ToolError::IsADirectory(path.to_owned()));
        }
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(|e| ToolError::io("create parent of", path, e))?;
        }
        fs::write(&target, content).map_err(|e| ToolError::io("write", path, e))?;
        Ok(format!("wrote {} bytes to {path}", content.len()))
    }

    /// Returns the text of the file at `path`.
    pub fn read_file(&self, path: &str) -> Result<String, ToolError> {
        let target = self.resolve(path)?;
        let meta = fs::metadata(&target).map_err(|e| ToolError::io("read", path, e))?;
        if meta.is_dir() {
            return Err(ToolError::IsADirectory(path.to_owned()));
        }
        if meta.len() > MAX_READ_BYTES {
            return Err(ToolError::TooLarge { path: path.to_owned(), size: meta.len() });
        }
        let bytes = fs::read(&target).map_err(|e| ToolError::io("read", path, e))?;
        String::from_utf8(bytes).map_err(|_| ToolError::NotText(path.to_owned()))
    }

    /// Lists the entries of the directory at `path`, sorted, one per line, with a trailing
    /// `/` on subdirectories. Symbolic links are listed by name and not followed, so a
    /// listing never reveals anything about what lies outside the root.
    pub fn list_directory(&self, path: &str) -> Result<String, ToolError> {
        let target = self.resolve(path)?;
        let entries = fs::read_dir(&target).map_err(|e| ToolError::io("list", path, e))?;
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| ToolError::io("list", path, e))?;
            let is_dir = entry.file_type().map_err(|e| ToolError::io("list", path, e))?.is_dir();
            let mut name = entry.file_name().to_string_lossy().into_owned();
            if is_dir {
                name.push('/');
            }
            names.push(name);
        }
        names.sort();
        Ok(names.join("\n"))
    }

    /// Maps a client path to a host path inside the root, or refuses it.
    ///
    /// Existing components are resolved one by one: a symbolic link is canonicalized and
    /// must land inside the root, so links cannot smuggle a path out. The first missing
    /// component ends the walk; the rest is appended verbatim, since nothing there exists
    /// yet to be a link. (A concurrent process with write access to the root could still
    /// race this check; that is out of scope for an example server.)
    fn resolve(&self, requested: &str) -> Result<PathBuf, ToolError> {
        let relative = relative_to_root(requested)?;
        let mut resolved = self.root.clone();
        let mut components = relative.iter();
        while let Some(component) = components.next() {
            let candidate = resolved.join(component);
            match fs::symlink_metadata(&candidate) {
                Ok(meta) if meta.file_type().is_symlink() => {
                    let target = fs::canonicalize(&candidate).map_err(|e| match e.kind() {
                        ErrorKind::NotFound => ToolError::BrokenLink(requested.to_owned()),
                        _ => ToolError::io("resolve", requested, e),
                    })?;
                    if !target.starts_with(&self.root) {
                        return Err(ToolError::Escape(requested.to_owned()));
                    }
                    resolved = target;
                }
                Ok(_) => resolved = candidate,
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    resolved = candidate;
                    resolved.extend(components);
                    break;
                }
                Err(e) => return Err(ToolError::io("resolve", requested, e)),
            }
        }
        Ok(resolved)
    }
}

/// Turns a client path into a relative path of plain names, treating the client's `/` as
/// the root. `..` is applied lexically and may not climb above the root.
fn relative_to_root(requested: &str) -> Result<PathBuf, ToolError> {
    let invalid = |reason| ToolError::InvalidPath { path: requested.to_owned(), reason };
    if requested.contains('\0') {
        return Err(invalid("contains a NUL byte"));
    }
    let mut names: Vec<OsString> = Vec::new();
    for component in Path::new(requested).components() {
        match component {
            Component::Prefix(_) => return Err(invalid("drive or UNC prefixes are not supported")),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir => {
                if names.pop().is_none() {
                    return Err(ToolError::Escape(requested.to_owned()));
                }
            }
            Component::Normal(name) => names.push(name.to_owned()),
        }
    }
    Ok(names.iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sandbox() -> (tempfile::TempDir, Sandbox) {
        let dir = tempfile::tempdir().unwrap();
        let sandbox = Sandbox::open(&dir.path().join("root")).unwrap();
        (dir, sandbox)
    }

    #[test]
    fn absolute_paths_land_inside_the_root() {
        let (_dir, sb) = sandbox();
        let msg = sb.write_file("/tmp/smoke.txt", "hello").unwrap();
        assert_eq!(msg, "wrote 5 bytes to /tmp/smoke.txt");
        assert_eq!(fs::read_to_string(sb.root().join("tmp/smoke.txt")).unwrap(), "hello");
        assert_eq!(sb.read_file("tmp/smoke.txt").unwrap(), "hello");
        assert_eq!(sb.read_file("./tmp/../tmp/smoke.txt").unwrap(), "hello");
    }

    #[test]
    fn dot_dot_above_the_root_is_refused() {
        let (_dir, sb) = sandbox();
        for path in ["..", "../x", "/a/../../x", "a/b/../../../x"] {
            let err = sb.write_file(path, "x").unwrap_err();
            assert!(matches!(err, ToolError::Escape(_)), "{path}: {err}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_out_of_the_root_are_refused() {
        use std::os::unix::fs::symlink;
        let (dir, sb) = sandbox();
        let outside = dir.path().join("outside");
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("secret"), "s").unwrap();
        symlink(&outside, sb.root().join("out")).unwrap();
        symlink(outside.join("secret"), sb.root().join("secret-link")).unwrap();
        symlink(outside.join("missing"), sb.root().join("dangling")).unwrap();

        assert!(matches!(sb.read_file("out/secret"), Err(ToolError::Escape(_))));
        assert!(matches!(sb.write_file("out/new", "x"), Err(ToolError::Escape(_))));
        assert!(matches!(sb.list_directory("/out"), Err(ToolError::Escape(_))));
        assert!(matches!(sb.read_file("secret-link"), Err(ToolError::Escape(_))));
        // Writing through a dangling link would create a file wherever it points.
        assert!(matches!(sb.write_file("dangling", "x"), Err(ToolError::BrokenLink(_))));
        assert!(!outside.join("missing").exists());
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_within_the_root_are_followed() {
        use std::os::unix::fs::symlink;
        let (_dir, sb) = sandbox();
        sb.write_file("real/a.txt", "a").unwrap();
        symlink(sb.root().join("real"), sb.root().join("alias")).unwrap();
        assert_eq!(sb.read_file("alias/a.txt").unwrap(), "a");
    }

    #[test]
    fn listing_is_sorted_and_marks_directories() {
        let (_dir, sb) = sandbox();
        sb.write_file("b.txt", "").unwrap();
        sb.write_file("a/inner.txt", "").unwrap();
        sb.write_file("c.txt", "").unwrap();
        assert_eq!(sb.list_directory("/").unwrap(), "a/\nb.txt\nc.txt");
        assert_eq!(sb.list_directory("").unwrap(), "a/\nb.txt\nc.txt");
        assert_eq!(sb.list_directory("a").unwrap(), "inner.txt");
    }

    #[test]
    fn failures_have_clear_kinds() {
        let (_dir, sb) = sandbox();
        sb.write_file("f.txt", "x").unwrap();
        fs::write(sb.root().join("bin"), [0xff, 0xfe]).unwrap();
        assert!(matches!(sb.read_file("nope"), Err(ToolError::NotFound(_))));
        assert!(matches!(sb.read_file("/"), Err(ToolError::IsADirectory(_))));
        assert!(matches!(sb.write_file("/", "x"), Err(ToolError::IsADirectory(_))));
        assert!(matches!(sb.list_directory("f.txt"), Err(ToolError::NotADirectory(_))));
        assert!(matches!(sb.read_file("bin"), Err(ToolError::NotText(_))));
        assert!(matches!(sb.read_file("a\0b"), Err(ToolError::InvalidPath { .. })));
        assert_eq!(sb.read_file("nope").unwrap_err().to_string(), "\"nope\" does not exist");
    }
}
