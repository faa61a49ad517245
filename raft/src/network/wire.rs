//! The framing of node-to-node Raft RPC: length-prefixed bincode over one TCP connection.
//!
//! Every frame is a 4-byte big-endian length, then that many bytes: a kind byte and the
//! payload. A connection starts with a [`HELLO`] frame carrying the cluster secret; the server
//! checks it before it reads anything else and answers a wrong or missing one with an
//! [`ERROR`] frame and a close. After it, the client sends one request at a time ([`APPEND`],
//! [`VOTE`], [`SNAPSHOT`], each openraft's request in bincode) and reads one reply
//! ([`REPLY`], openraft's `Result` in bincode, or [`ERROR`], UTF-8 text, after which the
//! server closes). The hello goes out with the first request, so a new connection costs no
//! round trip of its own.
//!
//! HTTP would cost a request line, headers and their parsing, a URL and a connection pool's
//! hand-offs per RPC; a Raft entry costs each follower one or two RPCs, so that overhead was a
//! fifth or more of a follower's CPU.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt};

/// First frame of a connection: the cluster secret, as UTF-8.
pub(crate) const HELLO: u8 = 1;
/// openraft's `AppendEntriesRequest`.
pub(crate) const APPEND: u8 = 2;
/// openraft's `VoteRequest`.
pub(crate) const VOTE: u8 = 3;
/// openraft's `InstallSnapshotRequest` (one chunk).
pub(crate) const SNAPSHOT: u8 = 4;
/// The answer to a request: openraft's `Result<response, RaftError>`.
pub(crate) const REPLY: u8 = 5;
/// The request was refused, with a reason in UTF-8; the server closes the connection after it.
pub(crate) const ERROR: u8 = 6;

/// Largest frame accepted: a full append batch or a snapshot chunk, with room to spare.
pub(crate) const MAX_FRAME: usize = 64 * 1024 * 1024;
/// Read buffer of each end of a connection: a heartbeat, an append of a few entries and their
/// replies each arrive in one read.
pub(crate) const READ_BUFFER: usize = 64 * 1024;
/// Largest hello accepted, so that a peer that has not authenticated cannot make the server
/// allocate more than this.
pub(crate) const MAX_HELLO: usize = 4096;

/// Appends one frame to `out`.
pub(crate) fn put_frame(out: &mut Vec<u8>, kind: u8, payload: &[u8]) {
    let len = u32::try_from(payload.len() + 1).expect("frames are under 4 GiB");
    out.extend_from_slice(&len.to_be_bytes());
    out.push(kind);
    out.extend_from_slice(payload);
}

/// Appends one frame holding `value` in bincode to `out`.
pub(crate) fn put_bincode<T: serde::Serialize>(out: &mut Vec<u8>, kind: u8, value: &T) -> bincode::Result<()> {
    let start = out.len();
    out.extend_from_slice(&[0; 5]);
    if let Err(e) = bincode::serialize_into(&mut *out, value) {
        out.truncate(start);
        return Err(e);
    }
    let len = u32::try_from(out.len() - start - 4).map_err(|_| bincode::ErrorKind::SizeLimit)?;
    out[start..start + 4].copy_from_slice(&len.to_be_bytes());
    out[start + 4] = kind;
    Ok(())
}

/// What came instead of a frame.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The peer closed the connection cleanly before a new frame began.
    Closed,
    /// The length prefix says more than the reader accepts.
    TooLarge {
        len: usize,
        max: usize,
    },
    /// The first bytes are an HTTP request line, not a frame.
    Http,
    Io(io::Error),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Closed => f.write_str("connection closed"),
            ReadError::TooLarge { len, max } => write!(f, "a frame of {len} bytes is over the limit of {max}"),
            ReadError::Http => f.write_str("an HTTP request, not a Raft RPC frame"),
            ReadError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl From<ReadError> for io::Error {
    fn from(e: ReadError) -> io::Error {
        match e {
            ReadError::Io(e) => e,
            ReadError::Closed => io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed"),
            other => io::Error::new(io::ErrorKind::InvalidData, other.to_string()),
        }
    }
}

/// Reads one frame of at most `max` bytes (kind and payload) into `buf`, returning its kind;
/// `buf` then holds the payload. Nothing past the length prefix is read or allocated for a
/// frame over `max`.
pub(crate) async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    max: usize,
    buf: &mut Vec<u8>,
) -> Result<u8, ReadError> {
    let mut head = [0u8; 4];
    let mut got = 0;
    while got < head.len() {
        match r.read(&mut head[got..]).await.map_err(ReadError::Io)? {
            0 if got == 0 => return Err(ReadError::Closed),
            0 => return Err(ReadError::Io(io::ErrorKind::UnexpectedEof.into())),
            n => got += n,
        }
    }
    if looks_like_http(&head) {
        return Err(ReadError::Http);
    }
    let len = u32::from_be_bytes(head) as usize;
    if len == 0 || len > max {
        return Err(ReadError::TooLarge { len, max });
    }
    let mut kind = [0u8; 1];
    r.read_exact(&mut kind).await.map_err(ReadError::Io)?;
    buf.clear();
    buf.resize(len - 1, 0);
    r.read_exact(buf).await.map_err(ReadError::Io)?;
    Ok(kind[0])
}

/// An HTTP method's first four bytes: what a browser, `curl` or a misdirected probe sends.
fn looks_like_http(head: &[u8; 4]) -> bool {
    matches!(head, b"GET " | b"POST" | b"PUT " | b"HEAD" | b"DELE" | b"PATC" | b"OPTI" | b"CONN" | b"PRI ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_read_back_as_written() {
        let mut out = Vec::new();
        put_frame(&mut out, HELLO, b"secret");
        put_bincode(&mut out, APPEND, &(7u64, "entries")).unwrap();
        put_frame(&mut out, ERROR, b"");
        let mut r = &out[..];
        let mut buf = Vec::new();
        assert_eq!(read_frame(&mut r, MAX_HELLO, &mut buf).await.unwrap(), HELLO);
        assert_eq!(buf, b"secret");
        assert_eq!(read_frame(&mut r, MAX_FRAME, &mut buf).await.unwrap(), APPEND);
        assert_eq!(bincode::deserialize::<(u64, String)>(&buf).unwrap(), (7, "entries".to_owned()));
        assert_eq!(read_frame(&mut r, MAX_FRAME, &mut buf).await.unwrap(), ERROR);
        assert!(buf.is_empty());
        assert!(matches!(read_frame(&mut r, MAX_FRAME, &mut buf).await, Err(ReadError::Closed)));
    }

    #[tokio::test]
    async fn an_oversized_frame_is_refused_from_its_length_alone() {
        let mut out = Vec::new();
        put_frame(&mut out, HELLO, &[b'x'; MAX_HELLO]);
        // Only the length prefix is there to read: the refusal must not wait for the rest.
        let mut r = &out[..4];
        let mut buf = Vec::new();
        match read_frame(&mut r, MAX_HELLO, &mut buf).await {
            Err(ReadError::TooLarge { len, max }) => assert_eq!((len, max), (MAX_HELLO + 1, MAX_HELLO)),
            other => panic!("expected TooLarge, got {other:?}"),
        }
        assert!(buf.capacity() < MAX_HELLO, "nothing allocated for the refused frame");
    }

    #[tokio::test]
    async fn a_frame_cut_short_is_an_error_not_a_close() {
        let mut out = Vec::new();
        put_frame(&mut out, APPEND, b"0123456789");
        let mut buf = Vec::new();
        for cut in [2, 4, 5, 9] {
            let mut r = &out[..cut];
            match read_frame(&mut r, MAX_FRAME, &mut buf).await {
                Err(ReadError::Io(e)) => assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "cut at {cut}"),
                other => panic!("cut at {cut}: expected an EOF error, got {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn an_http_request_is_recognised() {
        let mut r = &b"POST /raft/append HTTP/1.1\r\n\r\n"[..];
        assert!(matches!(read_frame(&mut r, MAX_HELLO, &mut Vec::new()).await, Err(ReadError::Http)));
    }
}
