//! An interactive headless Chromium for session-lifecycle tests (`tests/idp/browser-session.mjs`):
//! several browsers with their own cookie jars, each command answered as JSON.

use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};

use super::node;

pub struct Chromium {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Chromium {
    pub async fn start() -> Chromium {
        let node::Started { mut child, lines, .. } = node::start_interactive("browser-session.mjs", &[], "BROWSER_READY").await;
        let stdin = child.stdin.take().unwrap();
        Chromium { child, stdin, lines }
    }

    /// Send `cmd` (with `b`, the browser's name) and wait for its answer.
    pub async fn run(&mut self, browser: &str, cmd: &str, mut args: Value) -> Value {
        args["cmd"] = json!(cmd);
        args["b"] = json!(browser);
        self.stdin.write_all(format!("{args}\n").as_bytes()).await.unwrap();
        let answer = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = self.lines.next_line().await.unwrap() {
                if let Some(j) = line.strip_prefix("BROWSER ") {
                    return serde_json::from_str::<Value>(j).unwrap();
                }
            }
            panic!("the browser driver exited");
        })
        .await
        .expect("the browser answered within 60 s");
        assert!(answer.get("error").is_none(), "{cmd} in browser {browser}: {answer:#}");
        answer
    }

    pub async fn quit(mut self) {
        let _ = self.stdin.write_all(b"{\"cmd\":\"quit\"}\n").await;
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
    }
}
