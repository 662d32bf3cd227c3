//! The smallest HTTP/1.1 client `direct` needs: one `GET` with `Connection: close`, and a parser
//! for the response (status line, headers, a body framed by `Content-Length`, chunked encoding,
//! or the end of the connection). No redirects, no keep-alive, no compression.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt as _};

/// The most of a response `direct` reads (headers and body together).
pub(crate) const MAX_RESPONSE: usize = 4 << 20;

/// A parsed response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code, e.g. 200.
    pub status: u16,
    /// The reason phrase, e.g. `OK`.
    pub reason: String,
    /// Header fields in order, names as sent.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

impl Response {
    /// The first header of this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Why bytes from the server are not an HTTP/1.1 response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum HttpError {
    /// The status line is not `HTTP/1.x NNN reason`.
    #[error("the server's reply is not HTTP/1.x (status line {0:?})")]
    StatusLine(String),
    /// A header line without `:`, or not UTF-8.
    #[error("the server sent a malformed header line {0:?}")]
    Header(String),
    /// A broken chunk.
    #[error("the server sent a malformed chunked body ({0})")]
    Chunked(&'static str),
    /// `Content-Length` is not a number.
    #[error("the server sent an invalid Content-Length {0:?}")]
    ContentLength(String),
    /// The connection ended before the response did.
    #[error("the connection closed in the middle of the response")]
    Truncated,
    /// More than [`MAX_RESPONSE`] bytes.
    #[error("the response is larger than {} MiB", MAX_RESPONSE >> 20)]
    TooLarge,
}

/// The bytes of `GET path` to `host` (`Host` carries the port when it is not 443).
pub(crate) fn get_request(host: &str, port: u16, path: &str) -> Vec<u8> {
    let authority = if port == 443 {
        host.to_string()
    } else {
        format!("{host}:{port}")
    };
    format!(
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: kubectl-mtls-probe/{}\r\nAccept: application/json, */*\r\nConnection: close\r\n\r\n",
        env!("CARGO_PKG_VERSION")
    )
    .into_bytes()
}

/// Parses `buf` as a response. `Ok(None)`: more bytes are needed (when `eof` is false). With
/// `eof`, the bytes are all there will be: a body without length runs to the end, and anything
/// incomplete is [`HttpError::Truncated`].
pub(crate) fn parse_response(buf: &[u8], eof: bool) -> Result<Option<Response>, HttpError> {
    let Some(head_end) = find(buf, b"\r\n\r\n") else {
        if buf.len() > MAX_RESPONSE {
            return Err(HttpError::TooLarge);
        }
        return if eof && !buf.is_empty() {
            Err(HttpError::Truncated)
        } else {
            Ok(None)
        };
    };
    let head = std::str::from_utf8(&buf[..head_end])
        .map_err(|_| HttpError::Header(String::from_utf8_lossy(&buf[..head_end]).into_owned()))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let (status, reason) = parse_status_line(status_line)?;
    let mut headers = Vec::new();
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .filter(|(n, _)| !n.is_empty() && !n.contains(char::is_whitespace))
            .ok_or_else(|| HttpError::Header(line.to_string()))?;
        headers.push((name.to_string(), value.trim().to_string()));
    }
    let mut response = Response {
        status,
        reason,
        headers,
        body: Vec::new(),
    };
    let rest = &buf[head_end + 4..];
    // 1xx, 204 and 304 have no body.
    if (100..200).contains(&status) || status == 204 || status == 304 {
        return Ok(Some(response));
    }
    let chunked = response
        .header("transfer-encoding")
        .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"));
    if chunked {
        return match dechunk(rest)? {
            Some(body) => {
                response.body = body;
                Ok(Some(response))
            }
            None if eof => Err(HttpError::Truncated),
            None => Ok(None),
        };
    }
    if let Some(len) = response.header("content-length") {
        let len: usize = len
            .parse()
            .map_err(|_| HttpError::ContentLength(len.to_string()))?;
        if len > MAX_RESPONSE {
            return Err(HttpError::TooLarge);
        }
        return if rest.len() >= len {
            response.body = rest[..len].to_vec();
            Ok(Some(response))
        } else if eof {
            Err(HttpError::Truncated)
        } else {
            Ok(None)
        };
    }
    if eof {
        response.body = rest.to_vec();
        Ok(Some(response))
    } else {
        Ok(None)
    }
}

fn parse_status_line(line: &str) -> Result<(u16, String), HttpError> {
    let bad = || HttpError::StatusLine(line.chars().take(80).collect());
    let rest = line.strip_prefix("HTTP/1.").ok_or_else(bad)?;
    let mut parts = rest.splitn(3, ' ');
    let minor = parts.next().ok_or_else(bad)?;
    if minor != "0" && minor != "1" {
        return Err(bad());
    }
    let code = parts.next().ok_or_else(bad)?;
    if code.len() != 3 {
        return Err(bad());
    }
    let status: u16 = code.parse().map_err(|_| bad())?;
    if !(100..600).contains(&status) {
        return Err(bad());
    }
    Ok((status, parts.next().unwrap_or("").to_string()))
}

/// The body of a chunked message, or `None` if it is not complete yet.
fn dechunk(mut buf: &[u8]) -> Result<Option<Vec<u8>>, HttpError> {
    let mut body = Vec::new();
    loop {
        let Some(line_end) = find(buf, b"\r\n") else {
            return Ok(None);
        };
        let size_line = std::str::from_utf8(&buf[..line_end])
            .map_err(|_| HttpError::Chunked("chunk size is not text"))?;
        let size_text = size_line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| HttpError::Chunked("chunk size is not hex"))?;
        buf = &buf[line_end + 2..];
        if size == 0 {
            // Trailers (ignored) end with an empty line.
            return Ok(
                if buf.starts_with(b"\r\n") || find(buf, b"\r\n\r\n").is_some() {
                    Some(body)
                } else {
                    None
                },
            );
        }
        if body.len() + size > MAX_RESPONSE {
            return Err(HttpError::TooLarge);
        }
        if buf.len() < size + 2 {
            return Ok(None);
        }
        if &buf[size..size + 2] != b"\r\n" {
            return Err(HttpError::Chunked("chunk data not followed by CRLF"));
        }
        body.extend_from_slice(&buf[..size]);
        buf = &buf[size + 2..];
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Why reading a response failed.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The transport failed (for TLS, this carries the alert the server sent). `received` is how
    /// many bytes had arrived before.
    Io {
        /// The error.
        error: io::Error,
        /// Bytes read before it.
        received: usize,
    },
    /// The bytes are not a valid response.
    Http(HttpError),
}

/// Reads one response from `stream` (which the server closes after it: `Connection: close`).
/// A TLS peer that closes without `close_notify` after a complete response is accepted.
pub(crate) async fn read_response<R: AsyncRead + Unpin>(
    stream: &mut R,
) -> Result<Response, ReadError> {
    let mut buf = Vec::with_capacity(16 * 1024);
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        match stream.read(&mut chunk).await {
            Ok(0) => {
                return parse_response(&buf, true)
                    .map_err(ReadError::Http)?
                    .ok_or(ReadError::Http(HttpError::Truncated));
            }
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                if let Some(r) = parse_response(&buf, false).map_err(ReadError::Http)? {
                    return Ok(r);
                }
            }
            Err(error) => {
                if error.kind() == io::ErrorKind::UnexpectedEof
                    && let Ok(Some(r)) = parse_response(&buf, true)
                {
                    return Ok(r);
                }
                return Err(ReadError::Io {
                    error,
                    received: buf.len(),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_shape() {
        let r = String::from_utf8(get_request("a.example.com", 443, "/headers")).unwrap();
        assert!(
            r.starts_with("GET /headers HTTP/1.1\r\nHost: a.example.com\r\n"),
            "{r}"
        );
        assert!(r.contains("\r\nConnection: close\r\n"));
        assert!(r.ends_with("\r\n\r\n"));
        let r = String::from_utf8(get_request("a.example.com", 8443, "/")).unwrap();
        assert!(r.contains("Host: a.example.com:8443\r\n"), "{r}");
    }

    #[test]
    fn content_length() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 5\r\n\r\nhelloEXTRA";
        let r = parse_response(raw, false).unwrap().unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.reason, "OK");
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.body, b"hello");
        assert_eq!(parse_response(&raw[..raw.len() - 7], false), Ok(None));
        assert_eq!(
            parse_response(&raw[..raw.len() - 7], true),
            Err(HttpError::Truncated)
        );
    }

    #[test]
    fn chunked() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=1\r\nWiki\r\n6\r\npedia \r\nE\r\nin \r\n\r\nchunks.\r\n0\r\n\r\n";
        let r = parse_response(raw, false).unwrap().unwrap();
        assert_eq!(r.body, b"Wikipedia in \r\n\r\nchunks.");
        for cut in [50, raw.len() - 1] {
            assert_eq!(parse_response(&raw[..cut], false), Ok(None), "cut at {cut}");
            assert_eq!(parse_response(&raw[..cut], true), Err(HttpError::Truncated));
        }
        let trailers =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\nX-T: 1\r\n\r\n";
        assert_eq!(parse_response(trailers, false).unwrap().unwrap().body, b"x");
        let bad = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n";
        assert_eq!(
            parse_response(bad, false),
            Err(HttpError::Chunked("chunk size is not hex"))
        );
        let bad = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nxy\r\n";
        assert_eq!(
            parse_response(bad, false),
            Err(HttpError::Chunked("chunk data not followed by CRLF"))
        );
    }

    #[test]
    fn body_to_end_of_connection_and_no_body_statuses() {
        let raw = b"HTTP/1.0 400 Bad Request\r\nServer: nginx\r\n\r\n<html>no cert</html>";
        assert_eq!(parse_response(raw, false), Ok(None));
        let r = parse_response(raw, true).unwrap().unwrap();
        assert_eq!(
            (r.status, r.body.as_slice()),
            (400, &b"<html>no cert</html>"[..])
        );
        let r = parse_response(b"HTTP/1.1 204 No Content\r\n\r\n", false)
            .unwrap()
            .unwrap();
        assert_eq!(r.status, 204);
        assert!(r.body.is_empty());
    }

    #[test]
    fn garbage() {
        assert_eq!(parse_response(b"", true), Ok(None));
        assert_eq!(parse_response(b"", false), Ok(None));
        assert_eq!(
            parse_response(b"\x15\x03\x03\x00\x02", true),
            Err(HttpError::Truncated)
        );
        for bad in [
            &b"SSH-2.0-OpenSSH\r\n\r\n"[..],
            b"HTTP/2 200 OK\r\n\r\n",
            b"HTTP/1.1 2000 OK\r\n\r\n",
            b"HTTP/1.1 099 X\r\n\r\n",
            b"HTTP/1.1 abc X\r\n\r\n",
        ] {
            assert!(
                matches!(parse_response(bad, true), Err(HttpError::StatusLine(_))),
                "{bad:?}"
            );
        }
        assert!(matches!(
            parse_response(b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n", true),
            Err(HttpError::Header(_))
        ));
        assert!(matches!(
            parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", true),
            Err(HttpError::ContentLength(_))
        ));
        assert_eq!(
            parse_response(
                b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n",
                false
            ),
            Err(HttpError::TooLarge)
        );
    }

    #[tokio::test]
    async fn reads_from_a_stream_in_pieces() {
        let raw: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
        let mut stream = tokio_test_reader(raw);
        let r = read_response(&mut stream).await.unwrap();
        assert_eq!(r.body, b"{}");
        let mut short = tokio_test_reader(&raw[..raw.len() - 1]);
        assert!(matches!(
            read_response(&mut short).await,
            Err(ReadError::Http(HttpError::Truncated))
        ));
    }

    /// A reader that hands out one byte per read, to exercise incremental parsing.
    fn tokio_test_reader(bytes: &[u8]) -> impl AsyncRead + Unpin + use<> {
        struct OneByte(std::collections::VecDeque<u8>);
        impl AsyncRead for OneByte {
            fn poll_read(
                mut self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
                buf: &mut tokio::io::ReadBuf<'_>,
            ) -> std::task::Poll<io::Result<()>> {
                if let Some(b) = self.0.pop_front() {
                    buf.put_slice(&[b]);
                }
                std::task::Poll::Ready(Ok(()))
            }
        }
        OneByte(bytes.iter().copied().collect())
    }
}
