//! The Redis (or Valkey) [`Ephemeral`] backend, shared by every proxy pointed at one server:
//! a login started on one proxy finishes on another, and a state, a SAML response or a rate
//! limit counts once across all of them.
//!
//! Each operation is one small Lua script (or one command), so it is atomic on the server:
//! `take` is a `GETDEL` (two proxies can never both accept one state), `first_seen` a
//! `SET NX PXAT`, `hit` an `INCR` + `PEXPIRE`. Times come from the server's clock (`TIME`),
//! so proxies with slightly different clocks agree. Every key carries its own expiry, so a
//! crashed proxy leaves nothing behind for long. Caps hold across proxies: each kind and shape
//! keeps a sorted set of its live keys scored by expiry, pruned and counted inside the same
//! script that inserts. Scripts touch keys they compute from the index, so this is for a
//! single server (or a primary with replicas), not Redis Cluster.
//!
//! Keys (after `key_prefix`): `once:{kind}:{id}` (take-once, a value whose head is
//! `created,expires` in ms as 30 digits, then the browser cookie's SHA-256, then the bytes),
//! `kv:{kind}:{hex key}`, `seen:{kind}:{key}`, `rate:{kind}:{key}`, and the indexes
//! `idx:{shape}:{kind}`. A take-once key outlives its TTL by [`GRACE_MS`], so a late take
//! answers "expired" rather than "unknown". Every call is bounded by a short timeout; a server
//! that cannot be reached is [`StateError::Unavailable`] naming `redis`, and the connection
//! manager reconnects by itself when the server is back.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, RedisError, Script};
use subtle::ConstantTimeEq;

use super::ephemeral::{Ephemeral, Kind, TakeError};
use super::memory::Caps;
use super::{digest, StateError};

const BACKEND: &str = "redis";

/// How long past its TTL a take-once key is kept, to tell "expired" from "unknown".
pub const GRACE_MS: u64 = 60_000;

/// The server's time in ms, as `now` in every script.
const NOW: &str = "local t = redis.call('TIME') local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n";

/// Keep the index `KEYS[2]` alive at least `keep` ms.
const KEEP_INDEX: &str = "local function keep_index(keep) if redis.call('PTTL', KEYS[2]) < keep then redis.call('PEXPIRE', KEYS[2], keep) end end\n";

/// KEYS: entry, index. ARGV: member, ttl ms, cap, browser digest .. value, grace ms.
const PUT_ONCE: &str = "redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
if not redis.call('ZSCORE', KEYS[2], ARGV[1]) and redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[3]) then return -1 end
local ttl = tonumber(ARGV[2])
local exp = now + ttl
redis.call('SET', KEYS[1], string.format('%015d%015d', now, exp) .. ARGV[4], 'PX', ttl + tonumber(ARGV[5]))
redis.call('ZADD', KEYS[2], exp, ARGV[1])
keep_index(ttl + tonumber(ARGV[5]))
return 1";

/// KEYS: entry, index. ARGV: member. Returns {now} or {now, value}.
const TAKE: &str = "local v = redis.call('GETDEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
if not v then return {string.format('%d', now)} end
return {string.format('%d', now), v}";

/// KEYS: index. ARGV: entry key prefix. Returns {now, value...} of the live entries.
const LIST: &str = "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local out = {string.format('%d', now)}
for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local v = redis.call('GET', ARGV[1] .. m)
  if v then out[#out + 1] = v end
end
return out";

/// KEYS: the indexes of one kind. Returns how many live keys they hold.
const COUNT: &str = "local n = 0
for _, k in ipairs(KEYS) do redis.call('ZREMRANGEBYSCORE', k, '-inf', now) n = n + redis.call('ZCARD', k) end
return n";

/// KEYS: entry, index. ARGV: member, ttl ms, cap, value, entry key prefix, how many to evict.
const SET: &str = "redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
if not redis.call('ZSCORE', KEYS[2], ARGV[1]) and redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[3]) then
  local gone = redis.call('ZPOPMIN', KEYS[2], tonumber(ARGV[6]))
  for i = 1, #gone, 2 do redis.call('DEL', ARGV[5] .. gone[i]) end
end
local ttl = tonumber(ARGV[2])
redis.call('SET', KEYS[1], ARGV[4], 'PX', ttl)
redis.call('ZADD', KEYS[2], now + ttl, ARGV[1])
keep_index(ttl)
return 1";

/// As SET, only if the entry is `ARGV[7]` (`ARGV[8]` = 1) or absent (`ARGV[8]` = 0): 1 set, 0 not.
const REPLACE: &str = "local cur = redis.call('GET', KEYS[1])
if ARGV[8] == '1' then
  if cur ~= ARGV[7] then return 0 end
elseif cur then return 0 end
";

/// KEYS: entry, index. ARGV: member, until (unix ms), cap. 1 first, 0 seen, -1 full.
const FIRST_SEEN: &str = "local till = tonumber(ARGV[2])
if till <= now then return 1 end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[3]) then return -1 end
if not redis.call('SET', KEYS[1], '1', 'NX', 'PXAT', ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[2], till, ARGV[1])
keep_index(till - now)
return 1";

/// KEYS: entry, index. ARGV: member, window ms, cap. The hits in the window, or -1 full.
const HIT: &str = "redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
if redis.call('EXISTS', KEYS[1]) == 0 and redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[3]) then return -1 end
local n = redis.call('INCR', KEYS[1])
if n == 1 then
  local w = tonumber(ARGV[2])
  redis.call('PEXPIRE', KEYS[1], w)
  redis.call('ZADD', KEYS[2], now + w, ARGV[1])
  keep_index(w)
end
return n";

/// KEYS: entry. One hit fewer, never below zero (DECR keeps the TTL).
const UNHIT: &str = "local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n > 0 then redis.call('DECR', KEYS[1]) end
return 1";

/// KEYS: indexes. Drops their expired members; returns how many.
const SWEEP: &str = "local n = 0
for _, k in ipairs(KEYS) do n = n + redis.call('ZREMRANGEBYSCORE', k, '-inf', now) end
return n";

struct Scripts {
    put_once: Script,
    take: Script,
    list: Script,
    count: Script,
    set: Script,
    replace: Script,
    first_seen: Script,
    hit: Script,
    unhit: Script,
    sweep: Script,
}

impl Scripts {
    fn new() -> Scripts {
        let s = |body: &str| Script::new(&format!("{NOW}{KEEP_INDEX}{body}"));
        Scripts {
            put_once: s(PUT_ONCE),
            take: s(TAKE),
            list: s(LIST),
            count: s(COUNT),
            set: s(SET),
            replace: s(&format!("{REPLACE}{SET}")),
            first_seen: s(FIRST_SEEN),
            hit: s(HIT),
            unhit: s(UNHIT),
            sweep: s(SWEEP),
        }
    }
    fn all(&self) -> [&Script; 10] {
        [&self.put_once, &self.take, &self.list, &self.count, &self.set, &self.replace, &self.first_seen, &self.hit, &self.unhit, &self.sweep]
    }
}

/// The shapes of use, each with its own keys and index.
const SHAPES: [&str; 4] = ["once", "kv", "seen", "rate"];

/// The Redis backend. Cheap to share: one multiplexed, self-reconnecting connection.
pub struct RedisEphemeral {
    conn: ConnectionManager,
    prefix: String,
    caps: Caps,
    timeout: Duration,
    scripts: Scripts,
}

/// A failure talking to the server: unreachable or too slow → `Unavailable`, else `Backend`.
fn classify(e: RedisError) -> StateError {
    if e.is_io_error() || e.is_connection_refusal() || e.is_timeout() || e.is_connection_dropped() || e.is_unrecoverable_error() {
        StateError::Unavailable { backend: BACKEND, detail: e.to_string() }
    } else {
        StateError::Backend(format!("redis: {e}"))
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

fn hex(key: &[u8; 32]) -> String {
    key.iter().map(|b| format!("{b:02x}")).collect()
}

fn full(kind: Kind, n: i64) -> Result<i64, StateError> {
    if n < 0 {
        Err(StateError::Full { kind })
    } else {
        Ok(n)
    }
}

/// Parse the head of a take-once value: created and expiry ms, browser digest, value.
fn split_once_value(v: &[u8]) -> Option<(u64, u64, &[u8], &[u8])> {
    let num = |r: &[u8]| std::str::from_utf8(r).ok()?.parse::<u64>().ok();
    (v.len() >= 62).then_some(())?;
    Some((num(&v[..15])?, num(&v[15..30])?, &v[30..62], &v[62..]))
}

fn parse_now(v: &[u8]) -> u64 {
    std::str::from_utf8(v).ok().and_then(|s| s.parse().ok()).unwrap_or(0)
}

impl RedisEphemeral {
    /// Connect to `url` (`redis://` or `rediss://`), check that the server answers and takes
    /// the scripts, and bound every later call by `timeout`. A server that cannot be reached
    /// now refuses to start ([`StateError::Start`]): nothing falls back to memory.
    pub async fn connect(url: &str, prefix: &str, caps: Caps, timeout: Duration) -> Result<RedisEphemeral, StateError> {
        let start = |detail: String| StateError::Start { backend: BACKEND, detail };
        let client = redis::Client::open(url).map_err(|e| start(format!("state.redis.url is not usable: {e}")))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500));
        let connecting = ConnectionManager::new_with_config(client, config);
        let conn = tokio::time::timeout(timeout * 3, connecting)
            .await
            .map_err(|_| start(format!("no answer within {timeout:?}")))?
            .map_err(|e| start(format!("cannot connect: {e}")))?;
        let me = RedisEphemeral { conn, prefix: prefix.to_string(), caps, timeout, scripts: Scripts::new() };
        for s in me.scripts.all() {
            let mut c = me.conn.clone();
            s.load_async(&mut c).await.map_err(|e| start(format!("the server refused a script (Redis 6.2 or later, or Valkey, is needed): {e}")))?;
        }
        Ok(me)
    }

    fn key(&self, shape: &str, kind: Kind, id: &str) -> String {
        format!("{}{shape}:{kind}:{id}", self.prefix)
    }

    fn index(&self, shape: &str, kind: Kind) -> String {
        format!("{}idx:{shape}:{kind}", self.prefix)
    }

    /// Run one call against the server within the timeout.
    async fn run<T>(&self, call: impl std::future::Future<Output = redis::RedisResult<T>>) -> Result<T, StateError> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(r) => r.map_err(classify),
            Err(_) => Err(StateError::Unavailable { backend: BACKEND, detail: format!("no answer within {:?}", self.timeout) }),
        }
    }
}

#[async_trait]
impl Ephemeral for RedisEphemeral {
    async fn put_once(&self, kind: Kind, id: &str, browser: &str, ttl: Duration, value: Vec<u8>) -> Result<(), StateError> {
        let mut tail = digest(browser).to_vec();
        tail.extend_from_slice(&value);
        let mut c = self.conn.clone();
        let mut call = self.scripts.put_once.key(self.key("once", kind, id));
        call.key(self.index("once", kind)).arg(id).arg(millis(ttl)).arg(self.caps.of(kind)).arg(tail).arg(GRACE_MS);
        full(kind, self.run(call.invoke_async::<i64>(&mut c)).await?)?;
        Ok(())
    }

    async fn take(&self, kind: Kind, id: &str, browser: Option<&str>) -> Result<Vec<u8>, TakeError> {
        let mut c = self.conn.clone();
        let mut call = self.scripts.take.key(self.key("once", kind, id));
        call.key(self.index("once", kind)).arg(id);
        let reply: Vec<Vec<u8>> = self.run(call.invoke_async(&mut c)).await?;
        let (now, stored) = match reply.as_slice() {
            [now, v] => (parse_now(now), v),
            _ => return Err(TakeError::Unknown),
        };
        let (_, expires, owner, value) = split_once_value(stored).ok_or(TakeError::Unknown)?;
        if expires <= now {
            return Err(TakeError::Expired);
        }
        let presented = digest(browser.ok_or(TakeError::WrongBrowser)?);
        if !bool::from(presented.as_slice().ct_eq(owner)) {
            return Err(TakeError::WrongBrowser);
        }
        Ok(value.to_vec())
    }

    async fn list(&self, kind: Kind) -> Result<Vec<(Duration, Vec<u8>)>, StateError> {
        let mut c = self.conn.clone();
        let mut call = self.scripts.list.key(self.index("once", kind));
        call.arg(self.key("once", kind, ""));
        let reply: Vec<Vec<u8>> = self.run(call.invoke_async(&mut c)).await?;
        let Some((now, values)) = reply.split_first() else { return Ok(Vec::new()) };
        let now = parse_now(now);
        let live = values.iter().filter_map(|v| split_once_value(v)).filter(|(_, expires, _, _)| *expires > now);
        Ok(live.map(|(created, _, _, value)| (Duration::from_millis(now.saturating_sub(created)), value.to_vec())).collect())
    }

    async fn count(&self, kind: Kind) -> Result<usize, StateError> {
        let mut c = self.conn.clone();
        let mut call = self.scripts.count.prepare_invoke();
        for shape in SHAPES {
            call.key(self.index(shape, kind));
        }
        Ok(usize::try_from(self.run(call.invoke_async::<i64>(&mut c)).await?).unwrap_or(0))
    }

    async fn set(&self, kind: Kind, key: &[u8; 32], value: Vec<u8>, ttl: Duration) -> Result<(), StateError> {
        let (member, cap) = (hex(key), self.caps.of(kind));
        let mut c = self.conn.clone();
        let mut call = self.scripts.set.key(self.key("kv", kind, &member));
        call.key(self.index("kv", kind)).arg(&member).arg(millis(ttl)).arg(cap).arg(value).arg(self.key("kv", kind, "")).arg((cap / 10).max(1));
        self.run(call.invoke_async::<i64>(&mut c)).await?;
        Ok(())
    }

    async fn replace(&self, kind: Kind, key: &[u8; 32], expected: Option<&[u8]>, value: Vec<u8>, ttl: Duration) -> Result<bool, StateError> {
        let (member, cap) = (hex(key), self.caps.of(kind));
        let mut c = self.conn.clone();
        let mut call = self.scripts.replace.key(self.key("kv", kind, &member));
        call.key(self.index("kv", kind)).arg(&member).arg(millis(ttl)).arg(cap).arg(value).arg(self.key("kv", kind, "")).arg((cap / 10).max(1));
        call.arg(expected.unwrap_or_default()).arg(if expected.is_some() { "1" } else { "0" });
        Ok(self.run(call.invoke_async::<i64>(&mut c)).await? == 1)
    }

    async fn get(&self, kind: Kind, key: &[u8; 32]) -> Result<Option<Vec<u8>>, StateError> {
        let mut c = self.conn.clone();
        self.run(c.get(self.key("kv", kind, &hex(key)))).await
    }

    async fn delete(&self, kind: Kind, key: &[u8; 32]) -> Result<bool, StateError> {
        let member = hex(key);
        let mut c = self.conn.clone();
        let mut pipe = redis::pipe();
        pipe.atomic().del(self.key("kv", kind, &member)).zrem(self.index("kv", kind), &member).ignore();
        let (deleted,): (i64,) = self.run(pipe.query_async(&mut c)).await?;
        Ok(deleted > 0)
    }

    async fn first_seen(&self, kind: Kind, key: &str, until: SystemTime) -> Result<bool, StateError> {
        let until = u64::try_from(until.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis()).unwrap_or(u64::MAX);
        let mut c = self.conn.clone();
        let mut call = self.scripts.first_seen.key(self.key("seen", kind, key));
        call.key(self.index("seen", kind)).arg(key).arg(until).arg(self.caps.of(kind));
        Ok(full(kind, self.run(call.invoke_async::<i64>(&mut c)).await?)? == 1)
    }

    async fn hit(&self, kind: Kind, key: &str, window: Duration) -> Result<u64, StateError> {
        let mut c = self.conn.clone();
        let mut call = self.scripts.hit.key(self.key("rate", kind, key));
        call.key(self.index("rate", kind)).arg(key).arg(millis(window)).arg(self.caps.of(kind));
        Ok(u64::try_from(full(kind, self.run(call.invoke_async::<i64>(&mut c)).await?)?).unwrap_or(0))
    }

    async fn unhit(&self, kind: Kind, key: &str) -> Result<(), StateError> {
        let mut c = self.conn.clone();
        let call = self.scripts.unhit.key(self.key("rate", kind, key));
        self.run(call.invoke_async::<i64>(&mut c)).await.map(|_| ())
    }

    async fn sweep(&self) -> Result<usize, StateError> {
        // Keys expire by themselves; only the indexes keep members past their expiry.
        let mut c = self.conn.clone();
        let pattern = format!("{}idx:*", self.prefix);
        let indexes: Vec<String> = self
            .run(async {
                let mut iter = c.scan_match::<_, String>(&pattern).await?;
                let mut keys = Vec::new();
                while let Some(k) = iter.next_item().await {
                    keys.push(k?);
                }
                Ok(keys)
            })
            .await?;
        let mut swept = 0;
        for chunk in indexes.chunks(64) {
            let mut c = self.conn.clone();
            let mut call = self.scripts.sweep.prepare_invoke();
            for k in chunk {
                call.key(k);
            }
            swept += usize::try_from(self.run(call.invoke_async::<i64>(&mut c)).await?).unwrap_or(0);
        }
        Ok(swept)
    }
}
