//! A load generator for `eventsync serve`: many WebSocket clients speaking LiveStore's sync
//! protocol as a LiveStore client does (a live pull, pushes on the head it has seen, a
//! `ServerAheadError` answered by waiting for the live pull and pushing again on the new
//! head), each committing events at a steady rate. `eventsync bench --serve` measures with
//! it; `server/tests/load.rs` runs it small and checks what it checks.
//!
//! Every client checks, as it runs, what a client must see: its live pull delivers its
//! store's events in order with no gap and none twice, every push gets exactly one answer,
//! each of its own events is acknowledged once and comes back once. A client that sees
//! otherwise fails the run with a [`LoadError`] naming the client and what it saw. The
//! report holds, per event, the time from its commit to its echo on the committer's live
//! pull.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

/// What to run: `clients` clients over `stores` (client `i` on store `i % stores.len()`),
/// each committing `events_per_client` events, one every `interval`.
#[derive(Debug, Clone)]
pub struct LoadPlan {
    /// The server's WebSocket URL without a query, e.g. `ws://127.0.0.1:8787/sync`.
    pub url: String,
    /// The store ids; each should be empty when the run starts.
    pub stores: Vec<String>,
    /// How many clients.
    pub clients: usize,
    /// Events each client commits.
    pub events_per_client: u64,
    /// The pause between two commits of one client; clients start spread over one interval,
    /// so the server sees a steady `clients / interval` commits per second.
    pub interval: Duration,
    /// A hang guard: a run that has not finished after this fails (not a measurement).
    pub patience: Duration,
}

/// What a run measured.
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    /// Per event: from its commit to its echo on its committer's live pull.
    pub echo: Vec<Duration>,
    /// Events committed (and appended) in all.
    pub events: u64,
    /// Events delivered by live pulls, summed over clients (each client gets its store's).
    pub delivered: u64,
    /// From the first commit to the last client having seen its whole store.
    pub elapsed: Duration,
    /// Push requests sent.
    pub pushes: u64,
    /// Pushes answered `ServerAheadError` (and sent again on the new head).
    pub server_ahead: u64,
    /// The head each store reached.
    pub heads: BTreeMap<String, u64>,
}

impl LoadReport {
    /// The `q` quantile (0..=1) of the echo times; zero when there are none.
    pub fn echo_quantile(&self, q: f64) -> Duration {
        let mut sorted = self.echo.clone();
        sorted.sort();
        match sorted.len() {
            0 => Duration::ZERO,
            n => sorted[((n as f64 * q).ceil() as usize).clamp(1, n) - 1],
        }
    }
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A client could not connect.
    #[error("client {client}: cannot connect to {url}: {message}")]
    Connect {
        /// The client's index.
        client: usize,
        /// The URL it tried.
        url: String,
        /// What the WebSocket library said.
        message: String,
    },
    /// A client saw something a client must not see.
    #[error("client {client} (store {store}): {message}")]
    Violation {
        /// The client's index.
        client: usize,
        /// Its store.
        store: String,
        /// What it saw.
        message: String,
    },
    /// A store ended with other events than its clients committed.
    #[error("store {store}: {message}")]
    Store {
        /// The store.
        store: String,
        /// What was wrong.
        message: String,
    },
    /// The run did not finish within the plan's patience.
    #[error("the load run did not finish within {0:?}")]
    Timeout(Duration),
    /// The plan itself is unusable.
    #[error("bad load plan: {0}")]
    Plan(String),
}

/// What one client ends with.
struct ClientEnd {
    echo: Vec<Duration>,
    delivered: u64,
    pushes: u64,
    server_ahead: u64,
    head: u64,
    done_at: Instant,
}

/// Runs `plan` and returns what it measured, or the first violation any client saw.
pub async fn run(plan: &LoadPlan) -> Result<LoadReport, LoadError> {
    if plan.stores.is_empty() || plan.clients == 0 {
        return Err(LoadError::Plan("no stores or no clients".into()));
    }
    let clients = plan.clients;
    let store_of = |i: usize| plan.stores[i % plan.stores.len()].clone();
    let mut per_store: HashMap<String, u64> = HashMap::new();
    for i in 0..clients {
        *per_store.entry(store_of(i)).or_default() += plan.events_per_client;
    }
    // Every client connects and opens its live pull before anyone commits.
    let mut connected = Vec::with_capacity(clients);
    let mut connecting = futures::stream::iter((0..clients).map(|i| {
        let store = store_of(i);
        let url = format!("{}?storeId={store}&transport=ws", plan.url);
        async move { Client::connect(i, store, &url).await }
    }))
    .buffer_unordered(64);
    while let Some(client) = connecting.next().await {
        connected.push(client?);
    }
    drop(connecting);
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for client in connected {
        let offset = plan.interval.mul_f64(client.index as f64 / clients as f64);
        let total = per_store[&client.store];
        let events = plan.events_per_client;
        let interval = plan.interval;
        tasks.spawn(client.run(start + offset, interval, events, total));
    }
    let mut report = LoadReport::default();
    let mut last_done = start;
    let deadline = tokio::time::sleep(plan.patience);
    tokio::pin!(deadline);
    loop {
        let joined = tokio::select! {
            joined = tasks.join_next() => joined,
            () = &mut deadline => {
                tasks.abort_all();
                return Err(LoadError::Timeout(plan.patience));
            }
        };
        let Some(joined) = joined else { break };
        let (store, end) = match joined {
            Ok(result) => result?,
            Err(e) => {
                return Err(LoadError::Plan(format!("a client task failed: {e}")));
            }
        };
        report.echo.extend(end.echo);
        report.delivered += end.delivered;
        report.pushes += end.pushes;
        report.server_ahead += end.server_ahead;
        last_done = last_done.max(end.done_at);
        report.heads.insert(store, end.head);
    }
    report.events = plan.events_per_client * clients as u64;
    report.elapsed = last_done - start;
    for (store, expected) in &per_store {
        let head = report.heads.get(store).copied().unwrap_or(0);
        if head != *expected {
            return Err(LoadError::Store {
                store: store.clone(),
                message: format!("the store's head is {head}, its clients committed {expected}"),
            });
        }
    }
    Ok(report)
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// One simulated LiveStore client.
struct Client {
    index: usize,
    store: String,
    id: String,
    socket: Socket,
    backend_id: String,
    /// The last event its live pull delivered (its head).
    last: u64,
    delivered: u64,
}

/// A push in flight: its request id and its own events (by number).
struct InFlight {
    request: String,
    numbers: Vec<u64>,
    parent: u64,
}

impl Client {
    fn violation(&self, message: impl Into<String>) -> LoadError {
        LoadError::Violation {
            client: self.index,
            store: self.store.clone(),
            message: message.into(),
        }
    }

    async fn connect(index: usize, store: String, url: &str) -> Result<Client, LoadError> {
        let connect_error = |message: String| LoadError::Connect {
            client: index,
            url: url.to_string(),
            message,
        };
        let (socket, _) = tokio_tungstenite::connect_async(url)
            .await
            .map_err(|e| connect_error(e.to_string()))?;
        let mut client = Client {
            index,
            store,
            id: format!("load-{index}"),
            socket,
            backend_id: String::new(),
            last: 0,
            delivered: 0,
        };
        let pull = json!({
            "_tag": "Request", "id": "pull", "tag": "SyncWsRpc.Pull", "headers": [],
            "payload": {"storeId": client.store, "live": true, "cursor": {"_tag": "None"}},
        });
        client.send(&pull).await?;
        // The backlog ends with a NoMore chunk.
        loop {
            let message = client.recv().await?;
            if message["_tag"] == "Chunk" && message["requestId"] == "pull" {
                let no_more = client.take_pull_chunk(&message, &mut |_, _| Ok(()))?;
                if no_more {
                    break;
                }
            } else {
                return Err(client.violation(format!("before the first pull page: {message}")));
            }
        }
        Ok(client)
    }

    async fn send(&mut self, message: &Value) -> Result<(), LoadError> {
        let text = message.to_string();
        self.socket
            .send(Message::Text(text.into()))
            .await
            .map_err(|e| self.violation(format!("sending failed: {e}")))
    }

    async fn recv(&mut self) -> Result<Value, LoadError> {
        loop {
            match self.socket.next().await {
                Some(Ok(Message::Text(text))) => {
                    return serde_json::from_str(text.as_str())
                        .map_err(|e| self.violation(format!("a frame that is not JSON: {e}")));
                }
                Some(Ok(Message::Close(frame))) => {
                    return Err(self.violation(format!("the server closed the socket: {frame:?}")));
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(self.violation(format!("the socket failed: {e}"))),
                None => return Err(self.violation("the socket ended")),
            }
        }
    }

    /// Takes one chunk of the live pull: checks order and gaps, calls `own` with each of
    /// this client's events (its number and sequence number). Returns whether it said NoMore.
    fn take_pull_chunk(
        &mut self,
        message: &Value,
        own: &mut dyn FnMut(u64, u64) -> Result<(), String>,
    ) -> Result<bool, LoadError> {
        let Some(page) = message["values"].as_array().and_then(|v| v.first()) else {
            return Err(self.violation(format!("a pull chunk without a value: {message}")));
        };
        let Some(backend_id) = page["backendId"].as_str() else {
            return Err(self.violation(format!("a pull page without a backendId: {page}")));
        };
        if self.backend_id.is_empty() {
            self.backend_id = backend_id.to_string();
        } else if self.backend_id != backend_id {
            return Err(self.violation(format!(
                "the backend id changed from {} to {backend_id}",
                self.backend_id
            )));
        }
        let Some(batch) = page["batch"].as_array() else {
            return Err(self.violation(format!("a pull page without a batch: {page}")));
        };
        for item in batch {
            let event = &item["eventEncoded"];
            let (Some(seq), Some(parent)) =
                (event["seqNum"].as_u64(), event["parentSeqNum"].as_u64())
            else {
                return Err(self.violation(format!("an event without numbers: {event}")));
            };
            if parent != self.last || seq != self.last + 1 {
                return Err(self.violation(format!(
                    "after e{} the live pull delivered e{seq} (parent e{parent}): a gap, a repeat or a reorder",
                    self.last
                )));
            }
            self.last = seq;
            self.delivered += 1;
            if event["clientId"] == self.id.as_str() {
                let Some(number) = event["args"]["n"].as_u64() else {
                    return Err(self.violation(format!("an own event without its number: {event}")));
                };
                own(number, seq).map_err(|m| self.violation(m))?;
            }
        }
        Ok(page["pageInfo"]["_tag"] == "NoMore")
    }

    /// Commits `events` events, one every `interval` from `first`, and runs until every one
    /// came back and the live pull reached `total` (the store's events in all).
    async fn run(
        mut self,
        first: Instant,
        interval: Duration,
        events: u64,
        total: u64,
    ) -> Result<(String, ClientEnd), LoadError> {
        let mut committed_at: Vec<Instant> = Vec::with_capacity(events as usize);
        let mut echoed: Vec<Option<Duration>> = vec![None; events as usize];
        let mut acked: Vec<u32> = vec![0; events as usize];
        // Own events not yet acknowledged, oldest first.
        let mut unsent: VecDeque<u64> = VecDeque::new();
        let mut in_flight: Option<InFlight> = None;
        // Push again only once the live pull reached this (the head a refusal named, or
        // this client's last acknowledged event).
        let mut wait_for = 0u64;
        let mut pushes = 0u64;
        let mut server_ahead = 0u64;
        let mut next_request = 0u64;
        let mut ticker = tokio::time::interval_at(first, interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if committed_at.len() as u64 == events
                && in_flight.is_none()
                && unsent.is_empty()
                && self.last >= total
                && echoed.iter().all(Option::is_some)
            {
                break;
            }
            // Push what is unsent, on the head the live pull has shown.
            if in_flight.is_none() && !unsent.is_empty() && self.last >= wait_for {
                let numbers: Vec<u64> = unsent.iter().copied().take(100).collect();
                let parent = self.last;
                let batch: Vec<Value> = numbers
                    .iter()
                    .enumerate()
                    .map(|(i, n)| {
                        json!({
                            "name": "v1.LoadEvent",
                            "args": {"n": n, "client": self.id},
                            "seqNum": parent + 1 + i as u64,
                            "parentSeqNum": parent + i as u64,
                            "clientId": self.id,
                            "sessionId": format!("{}-s", self.id),
                        })
                    })
                    .collect();
                next_request += 1;
                let request = format!("push-{next_request}");
                let message = json!({
                    "_tag": "Request", "id": request, "tag": "SyncWsRpc.Push", "headers": [],
                    "payload": {
                        "storeId": self.store, "batch": batch,
                        "backendId": {"_tag": "Some", "value": self.backend_id},
                    },
                });
                self.send(&message).await?;
                pushes += 1;
                in_flight = Some(InFlight {
                    request,
                    numbers,
                    parent,
                });
            }
            let committing = (committed_at.len() as u64) < events;
            tokio::select! {
                _ = ticker.tick(), if committing => {
                    unsent.push_back(committed_at.len() as u64);
                    committed_at.push(Instant::now());
                }
                message = self.recv() => {
                    let message = message?;
                    match message["_tag"].as_str() {
                        Some("Chunk") if message["requestId"] == "pull" => {
                            let now = Instant::now();
                            self.take_pull_chunk(&message, &mut |number, seq| {
                                let slot = echoed
                                    .get_mut(number as usize)
                                    .ok_or(format!("e{seq} carries an own number {number} never committed"))?;
                                if slot.is_some() {
                                    return Err(format!("own event {number} came back twice (again as e{seq})"));
                                }
                                let at = committed_at.get(number as usize).ok_or(format!("own event {number} came back before it was committed"))?;
                                *slot = Some(now - *at);
                                Ok(())
                            })?;
                        }
                        Some("Exit") => {
                            let id = message["requestId"].as_str().unwrap_or_default();
                            let Some(flight) = in_flight.take_if(|f| f.request == id) else {
                                return Err(self.violation(format!("an Exit for no request in flight: {message}")));
                            };
                            let exit = &message["exit"];
                            match exit["_tag"].as_str() {
                                Some("Success") => {
                                    for n in &flight.numbers {
                                        acked[*n as usize] += 1;
                                    }
                                    unsent.drain(..flight.numbers.len());
                                    wait_for = flight.parent + flight.numbers.len() as u64;
                                }
                                _ if exit["cause"]["error"]["_tag"] == "ServerAheadError" => {
                                    server_ahead += 1;
                                    let head = exit["cause"]["error"]["minimumExpectedNum"].as_u64().unwrap_or(0);
                                    if head <= flight.parent {
                                        return Err(self.violation(format!("ServerAheadError naming head e{head} for a push on e{}", flight.parent)));
                                    }
                                    wait_for = head;
                                }
                                _ => return Err(self.violation(format!("a push failed: {message}"))),
                            }
                        }
                        Some("Pong") => {}
                        _ => return Err(self.violation(format!("an unexpected message: {message}"))),
                    }
                }
            }
        }
        if let Some(n) = acked.iter().position(|count| *count != 1) {
            return Err(
                self.violation(format!("own event {n} was acknowledged {} times", acked[n]))
            );
        }
        if self.last != total {
            return Err(self.violation(format!(
                "the live pull reached e{}, past the {total} events committed to the store",
                self.last
            )));
        }
        let _ = self.socket.close(None).await;
        let end = ClientEnd {
            echo: echoed.into_iter().flatten().collect(),
            delivered: self.delivered,
            pushes,
            server_ahead,
            head: self.last,
            done_at: Instant::now(),
        };
        Ok((self.store, end))
    }
}
