//! A minimal HTTP/1.1 GET of JSON over plain TCP (http:// only): what `paver status
//! --server`, `wait` and the Schema Registry lookups need, without an HTTP client crate.

/// Why a request to a `paver run` (or a Schema Registry) got no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("`{0}`: only http:// servers are supported")]
    NotHttp(String),
    #[error("cannot reach {host}: {source}")]
    Unreachable {
        host: String,
        #[source]
        source: std::io::Error,
    },
    #[error("talking to {host}: {source}")]
    Io {
        host: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{url}: {what}")]
    Malformed { url: String, what: &'static str },
    #[error("{url} answered {code}: {body}")]
    Status {
        url: String,
        code: String,
        body: String,
    },
    #[error("{url} answered what is not JSON: {source}")]
    NotJson {
        url: String,
        #[source]
        source: serde_json::Error,
    },
}

/// A GET of JSON from a `paver run` (plain HTTP/1.1: the status endpoint is meant for the
/// cluster network or a port-forward). `Ok(None)` on 404.
pub async fn get_json(url: &str) -> Result<Option<serde_json::Value>, HttpError> {
    let (code, body) = exchange("GET", url, b"").await?;
    match code.as_str() {
        "200" => serde_json::from_str(&body)
            .map(Some)
            .map_err(|source| HttpError::NotJson {
                url: url.to_string(),
                source,
            }),
        "404" => Ok(None),
        _ => Err(HttpError::Status {
            url: url.to_string(),
            code,
            body: body.trim().chars().take(200).collect(),
        }),
    }
}

/// A GET whose status code matters besides its body (the long poll's 200, 202, 404, 503):
/// the code, and the body parsed as JSON.
pub async fn get_with_status(url: &str) -> Result<(u16, serde_json::Value), HttpError> {
    let (code, body) = exchange("GET", url, b"").await?;
    let number = code.parse().map_err(|_| HttpError::Malformed {
        url: url.to_string(),
        what: "no status code in the response",
    })?;
    if number == 404 && serde_json::from_str::<serde_json::Value>(&body).is_err() {
        // A route this server does not have (an older `paver run`): said as such.
        return Ok((404, serde_json::Value::Null));
    }
    let json = serde_json::from_str(&body).map_err(|source| HttpError::NotJson {
        url: url.to_string(),
        source,
    })?;
    Ok((number, json))
}

/// A POST to a `paver run` (`/retry/<sha>`); any 2xx is fine.
pub async fn post(url: &str, body: &[u8]) -> Result<(), HttpError> {
    let (code, answer) = exchange("POST", url, body).await?;
    if code.starts_with('2') {
        Ok(())
    } else {
        Err(HttpError::Status {
            url: url.to_string(),
            code,
            body: answer.trim().to_string(),
        })
    }
}

/// One request; the status code and the body.
async fn exchange(method: &str, url: &str, payload: &[u8]) -> Result<(String, String), HttpError> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| HttpError::NotHttp(url.to_string()))?;
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
    let mut stream = tokio::net::TcpStream::connect(host)
        .await
        .map_err(|source| HttpError::Unreachable {
            host: host.to_string(),
            source,
        })?;
    let io = |source| HttpError::Io {
        host: host.to_string(),
        source,
    };
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nAccept: application/json\r\nContent-Length: {}\r\n\r\n",
        payload.len()
    );
    stream.write_all(request.as_bytes()).await.map_err(io)?;
    stream.write_all(payload).await.map_err(io)?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.map_err(io)?;
    let malformed = |what| HttpError::Malformed {
        url: url.to_string(),
        what,
    };
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| malformed("a malformed HTTP response"))?;
    let code = head.split_whitespace().nth(1).unwrap_or("").to_string();
    let chunked = head
        .lines()
        .any(|l| l.to_ascii_lowercase().replace(' ', "") == "transfer-encoding:chunked");
    let body = if chunked {
        dechunk(body).map_err(malformed)?
    } else {
        body.to_string()
    };
    Ok((code, body))
}

/// The body of a `Transfer-Encoding: chunked` response.
fn dechunk(mut body: &str) -> Result<String, &'static str> {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n").ok_or("a malformed chunk")?;
        let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| "a malformed chunk size")?;
        if size == 0 {
            return Ok(out);
        }
        let chunk = rest.get(..size).ok_or("a truncated chunk")?;
        out.push_str(chunk);
        body = rest.get(size..).unwrap_or("").trim_start_matches("\r\n");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn chunked_bodies_are_joined() {
        assert_eq!(
            super::dechunk("4\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\n\r\n").unwrap(),
            "{\"a\":1}"
        );
        assert!(super::dechunk("zz\r\n").is_err());
    }
}
