//! A real NATS cluster with JetStream (and leaf nodes connecting to it) on loopback.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::Value;

use crate::nats::NatsServer;
use crate::process::{self, POLL_INTERVAL, StartFailure};

/// How long [`NatsCluster::start`], [`NatsCluster::restart`], [`NatsCluster::wait_ready`] and
/// [`LeafBuilder::start`] wait for the cluster (or leaf) to be ready.
pub const CLUSTER_READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The JetStream domain of every [`NatsCluster`] (`jetstream { domain: hub }`); leaf clients reach the hub's
/// JetStream through `$JS.hub.API.>`.
pub const HUB_DOMAIN: &str = "hub";

/// How many sets of ports a cluster or leaf start tries before giving up (a port picked for a node's config
/// may be taken by another process before the node binds it; the node then exits at startup).
const PORT_ATTEMPTS: usize = 3;
/// Connect, read and write timeout of one readiness probe (monitoring GET or `$JS.API.INFO` request).
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Tells clusters (and leaves) of one test process apart in names.
static NEXT_ID: AtomicUsize = AtomicUsize::new(0);

/// The ports a cluster node's config names (its client port is picked by the server, as for [`NatsServer`]).
#[derive(Debug, Clone, Copy)]
struct NodePorts {
    cluster: u16,
    leafnode: u16,
    monitor: u16,
}

#[derive(Debug)]
struct Node {
    server: NatsServer,
    name: String,
    ports: NodePorts,
}

/// `n` `nats-server` processes on 127.0.0.1 forming one cluster with JetStream, each also accepting leaf
/// node connections; every node is killed (by its PID) on drop.
///
/// Each node is a [`NatsServer`] (own tempdir, JetStream store, log; client port picked by the server)
/// started with this config (`nats-server -c <file> -a 127.0.0.1 -p -1 -js -sd <tempdir>/store`), node
/// `i` of `n`:
///
/// ```text
/// server_name: "<cluster>-n<i>"
/// http: "127.0.0.1:<monitor port i>"
/// jetstream {
///   domain: "hub"
/// }
/// cluster {
///   name: "<cluster>"
///   listen: "127.0.0.1:<cluster port i>"
///   routes: ["nats-route://127.0.0.1:<cluster port j>", ...]   # every other node j
/// }
/// leafnodes {
///   listen: "127.0.0.1:<leafnode port i>"
/// }
/// ```
///
/// [`start`](Self::start) returns once the cluster is ready for JetStream: every node accepts clients,
/// routes to every other node, agrees on a JetStream meta leader that sees every other node as current,
/// and answers `$JS.API.INFO`. Leaf nodes: [`start_leaf`](Self::start_leaf), [`leaf`](Self::leaf).
#[derive(Debug)]
pub struct NatsCluster {
    name: String,
    nodes: Vec<Node>,
    leaves: AtomicUsize,
}

impl NatsCluster {
    /// Starts an `n`-node cluster (`n >= 2`; JetStream needs 3 to keep a quorum with one node down) and
    /// waits (up to [`CLUSTER_READY_TIMEOUT`]) until it is ready for JetStream.
    pub fn start(n: usize) -> Result<Self> {
        if n < 2 {
            bail!("a NATS cluster needs at least 2 nodes (3 for JetStream to survive losing one), not {n}");
        }
        let deadline = Instant::now() + CLUSTER_READY_TIMEOUT;
        let mut failures = Vec::new();
        for _ in 0..PORT_ATTEMPTS {
            match Self::try_start(n, deadline) {
                Ok(cluster) => return Ok(cluster),
                Err(StartFailure::Exited(e)) => failures.push(e),
                Err(StartFailure::Other(e)) => return Err(e),
            }
        }
        let mut message = format!("a {n}-node NATS cluster failed to start on {PORT_ATTEMPTS} sets of free ports");
        for failure in failures {
            message.push_str(&format!("\n{failure:#}"));
        }
        bail!(message)
    }

    fn try_start(n: usize, deadline: Instant) -> Result<Self, StartFailure> {
        let name = format!("lattice-{}-{}", std::process::id(), NEXT_ID.fetch_add(1, Ordering::Relaxed));
        let ports = (0..n)
            .map(|_| {
                Ok(NodePorts {
                    cluster: process::free_port()?,
                    leafnode: process::free_port()?,
                    monitor: process::free_port()?,
                })
            })
            .collect::<Result<Vec<_>>>()
            .map_err(StartFailure::Other)?;
        let mut nodes = Vec::with_capacity(n);
        for (i, &node_ports) in ports.iter().enumerate() {
            let node_name = format!("{name}-n{i}");
            let config = node_config(&name, &node_name, node_ports, &ports);
            let server = NatsServer::builder().config(config).try_start().map_err(|failure| {
                failure.context(format!("starting node {i} ({node_name}) of NATS cluster {name}"))
            })?;
            nodes.push(Node { server, name: node_name, ports: node_ports });
        }
        let mut cluster = Self { name, nodes, leaves: AtomicUsize::new(0) };
        cluster.wait_formed(deadline)?;
        Ok(cluster)
    }

    /// The cluster name (also the prefix of every node's `server_name`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The number of nodes (running or not).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Always false: a cluster has at least 2 nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Every node's client URL, `nats://127.0.0.1:PORT`, in node order (for a client that fails over).
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(|node| node.server.url()).collect()
    }

    /// Node `i`'s client URL. Panics if `i >= len()`.
    pub fn url(&self, i: usize) -> String {
        self.nodes[i].server.url()
    }

    /// Node `i` (its port, PID, log, store…). Panics if `i >= len()`.
    pub fn node(&self, i: usize) -> &NatsServer {
        &self.nodes[i].server
    }

    /// Node `i`, mutably (e.g. to [`stop`](NatsServer::stop) it gracefully; bring it back with
    /// [`restart`](Self::restart) to wait for it to rejoin). Panics if `i >= len()`.
    pub fn node_mut(&mut self, i: usize) -> &mut NatsServer {
        &mut self.nodes[i].server
    }

    /// Node `i`'s `server_name` (as in JetStream's `cluster.leader` and `replicas`). Panics if `i >= len()`.
    pub fn server_name(&self, i: usize) -> &str {
        &self.nodes[i].name
    }

    /// The index of the node with this `server_name`, e.g. a stream's leader.
    pub fn index_of(&self, server_name: &str) -> Option<usize> {
        self.nodes.iter().position(|node| node.name == server_name)
    }

    /// Node `i`'s leafnode listener, `nats-leaf://127.0.0.1:PORT`. Panics if `i >= len()`.
    pub fn leafnode_url(&self, i: usize) -> String {
        format!("nats-leaf://127.0.0.1:{}", self.nodes[i].ports.leafnode)
    }

    /// Every node's leafnode listener, in node order.
    pub fn leafnode_urls(&self) -> Vec<String> {
        (0..self.nodes.len()).map(|i| self.leafnode_url(i)).collect()
    }

    /// SIGKILLs node `i` (a crash) and waits for it to exit; the others keep running. Its ports, store and
    /// log are kept for [`restart`](Self::restart).
    pub fn kill(&mut self, i: usize) -> Result<()> {
        let name = self.name.clone();
        let node = self.nodes.get_mut(i).with_context(|| format!("no node {i} in NATS cluster {name}"))?;
        node.server.kill().with_context(|| format!("killing node {i} ({}) of NATS cluster {name}", node.name))
    }

    /// Starts node `i` again (stopping it first if it runs) with the same ports and JetStream store, and
    /// waits (up to [`CLUSTER_READY_TIMEOUT`]) until it is back in the cluster: see
    /// [`wait_ready`](Self::wait_ready).
    pub fn restart(&mut self, i: usize) -> Result<()> {
        let name = self.name.clone();
        let node = self.nodes.get_mut(i).with_context(|| format!("no node {i} in NATS cluster {name}"))?;
        node.server.restart().with_context(|| format!("restarting node {i} ({}) of NATS cluster {name}", node.name))?;
        self.wait_ready()
    }

    /// Waits (up to [`CLUSTER_READY_TIMEOUT`]) until the running nodes form a cluster ready for JetStream:
    /// each routes to every other running node, all agree on a JetStream meta leader that sees every other
    /// running node as current, and each answers `$JS.API.INFO`. Killed or stopped nodes are left out, so
    /// after [`kill`](Self::kill) this waits for a new meta leader if the old one was killed.
    pub fn wait_ready(&mut self) -> Result<()> {
        self.wait_formed(Instant::now() + CLUSTER_READY_TIMEOUT).map_err(anyhow::Error::from)
    }

    /// The current JetStream meta leader's `server_name`, as the first running node reports it.
    pub fn meta_leader(&self) -> Result<String> {
        let node = self
            .nodes
            .iter()
            .find(|node| node.server.pid().is_some())
            .with_context(|| format!("no node of NATS cluster {} is running", self.name))?;
        let jsz = http_get_json(node.ports.monitor, "/jsz").map_err(|e| anyhow!("{}: {e}", node.name))?;
        match jsz["meta_cluster"]["leader"].as_str() {
            Some(leader) if !leader.is_empty() => Ok(leader.to_owned()),
            _ => bail!("{} knows no JetStream meta leader: {}", node.name, jsz["meta_cluster"]),
        }
    }

    /// Starts a leaf node of this cluster with the default settings (see [`LeafBuilder`]): no JetStream
    /// of its own, its clients' `$JS.API` mapped to the hub's JetStream. Returns once clients of the leaf
    /// get answers from the hub's JetStream.
    pub fn start_leaf(&self) -> Result<NatsServer> {
        self.leaf().start()
    }

    /// Settings for a leaf node of this cluster.
    pub fn leaf(&self) -> LeafBuilder<'_> {
        LeafBuilder { cluster: self, map_jetstream_to_hub: true }
    }

    /// Polls [`check_formed`](Self::check_formed) until it passes, a running node dies, or `deadline`.
    fn wait_formed(&mut self, deadline: Instant) -> Result<(), StartFailure> {
        let started = Instant::now();
        loop {
            for (i, node) in self.nodes.iter_mut().enumerate() {
                if node.server.pid().is_some() && !node.server.is_running() {
                    return Err(StartFailure::Exited(anyhow!(
                        "node {i} ({}) of NATS cluster {} exited\n{}",
                        node.name,
                        self.name,
                        process::log_tail(&node.server.log_path())
                    )));
                }
            }
            let reason = match self.check_formed() {
                Ok(()) => return Ok(()),
                Err(reason) => reason,
            };
            if Instant::now() >= deadline {
                let mut message = format!(
                    "NATS cluster {} not ready for JetStream after {:?} (last check: {reason})",
                    self.name,
                    started.elapsed()
                );
                for node in &self.nodes {
                    message.push('\n');
                    message.push_str(&process::log_tail(&node.server.log_path()));
                }
                return Err(StartFailure::Other(anyhow!(message)));
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// `Ok` once the running nodes form a cluster ready for JetStream; else why not.
    fn check_formed(&self) -> Result<(), String> {
        let up: Vec<&Node> = self.nodes.iter().filter(|node| node.server.pid().is_some()).collect();
        if up.is_empty() {
            return Err("no node is running".to_owned());
        }
        for node in &up {
            let routez = http_get_json(node.ports.monitor, "/routez").map_err(|e| format!("{}: {e}", node.name))?;
            let remotes: BTreeSet<&str> = routez["routes"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|route| route["remote_name"].as_str())
                .collect();
            if let Some(missing) = up.iter().find(|other| other.name != node.name && !remotes.contains(&*other.name)) {
                return Err(format!("{} has no route to {} yet", node.name, missing.name));
            }
        }
        let mut leader: Option<String> = None;
        for node in &up {
            let jsz = http_get_json(node.ports.monitor, "/jsz").map_err(|e| format!("{}: {e}", node.name))?;
            let seen = jsz["meta_cluster"]["leader"].as_str().unwrap_or_default();
            if seen.is_empty() {
                return Err(format!("{} knows no JetStream meta leader yet", node.name));
            }
            match &leader {
                None => leader = Some(seen.to_owned()),
                Some(first) if first != seen => {
                    return Err(format!("nodes disagree on the JetStream meta leader ({first}, {seen})"));
                }
                Some(_) => {}
            }
        }
        let leader = leader.unwrap_or_default();
        let leader_node = up
            .iter()
            .find(|node| node.name == leader)
            .ok_or_else(|| format!("JetStream meta leader {leader:?} is not a running node"))?;
        let jsz = http_get_json(leader_node.ports.monitor, "/jsz").map_err(|e| format!("{leader}: {e}"))?;
        let replicas = jsz["meta_cluster"]["replicas"].as_array().cloned().unwrap_or_default();
        for node in up.iter().filter(|node| node.name != leader) {
            let current = replicas.iter().any(|replica| {
                replica["name"] == node.name.as_str()
                    && replica["current"] == true
                    && replica["offline"].as_bool() != Some(true)
            });
            if !current {
                return Err(format!("meta leader {leader} does not see {} as a current peer yet", node.name));
            }
        }
        for node in &up {
            nats_request(node.server.port(), "$JS.API.INFO", "").map_err(|e| format!("{}: {e}", node.name))?;
        }
        Ok(())
    }
}

/// The config text of node `me` (ports `mine`) in cluster `cluster` whose nodes have ports `all`.
fn node_config(cluster: &str, me: &str, mine: NodePorts, all: &[NodePorts]) -> String {
    let routes: Vec<String> = all
        .iter()
        .filter(|other| other.cluster != mine.cluster)
        .map(|other| format!("\"nats-route://127.0.0.1:{}\"", other.cluster))
        .collect();
    format!(
        "server_name: \"{me}\"\n\
         http: \"127.0.0.1:{monitor}\"\n\
         jetstream {{\n  domain: \"{HUB_DOMAIN}\"\n}}\n\
         cluster {{\n  name: \"{cluster}\"\n  listen: \"127.0.0.1:{cluster_port}\"\n  routes: [{routes}]\n}}\n\
         leafnodes {{\n  listen: \"127.0.0.1:{leafnode}\"\n}}\n",
        monitor = mine.monitor,
        cluster_port = mine.cluster,
        routes = routes.join(", "),
        leafnode = mine.leafnode,
    )
}

/// Configures a leaf node of a [`NatsCluster`]; from [`NatsCluster::leaf`].
///
/// The leaf is a [`NatsServer`] without JetStream (`nats-server -c <file> -a 127.0.0.1 -p -1`) whose
/// config connects it to every node's leafnode listener, binding the global account `$G` on both sides:
///
/// ```text
/// server_name: "<cluster>-leaf<k>"
/// http: "127.0.0.1:<monitor port>"
/// default_js_domain: { "$G": "hub" }      # only with map_jetstream_to_hub(true), the default
/// leafnodes {
///   remotes: [
///     { urls: ["nats-leaf://127.0.0.1:<leafnode port 0>", ...] }   # every node
///   ]
/// }
/// ```
///
/// Why the mapping: nats-server (since 2.7) denies `$JS.API.>`, `$KV.>` and `$OBJ.>` across a leaf
/// connection for a non-system account, so with no extra config a leaf client's `$JS.API.INFO` gets "no
/// responders" (the server logs `JetStream using domains: local "", remote "hub"`). The hub's JetStream
/// domain opens a second, domain-qualified API, `$JS.hub.API.>`, which does cross the link. Two ways to
/// use it from a leaf:
/// - the client names the domain: `async_nats::jetstream::with_domain(client, "hub")` (works on any leaf,
///   including one started with `map_jetstream_to_hub(false)`); or
/// - the leaf maps it (`default_js_domain`, the default here): plain `$JS.API.>` and `$KV.>` on the leaf are
///   rewritten to `$JS.hub.API.>` / `$JS.hub.API.$KV.>`, so an unmodified `async_nats::jetstream::new(client)`
///   on the leaf uses the hub's streams and key-value buckets. nats-server logs a warning that this option
///   "is a temporary backwards compatibility measure".
#[derive(Debug, Clone)]
pub struct LeafBuilder<'a> {
    cluster: &'a NatsCluster,
    map_jetstream_to_hub: bool,
}

impl LeafBuilder<'_> {
    /// Map the leaf's `$JS.API.>` (and `$KV.>`, `$OBJ.>`) to the hub's domain (default true). With false,
    /// leaf clients must address the hub's JetStream by its domain, [`HUB_DOMAIN`].
    pub fn map_jetstream_to_hub(mut self, map: bool) -> Self {
        self.map_jetstream_to_hub = map;
        self
    }

    /// Starts the leaf and waits (up to [`CLUSTER_READY_TIMEOUT`]) until its leaf connection to the hub is
    /// up and a client of the leaf gets answers from the hub's JetStream (`$JS.API.INFO`, or
    /// `$JS.hub.API.INFO` without the mapping).
    pub fn start(self) -> Result<NatsServer> {
        let deadline = Instant::now() + CLUSTER_READY_TIMEOUT;
        let mut failures = Vec::new();
        for _ in 0..PORT_ATTEMPTS {
            match self.try_start(deadline) {
                Ok(leaf) => return Ok(leaf),
                Err(StartFailure::Exited(e)) => failures.push(e),
                Err(StartFailure::Other(e)) => return Err(e),
            }
        }
        let mut message = format!("a leaf node failed to start on {PORT_ATTEMPTS} free monitoring ports");
        for failure in failures {
            message.push_str(&format!("\n{failure:#}"));
        }
        bail!(message)
    }

    fn try_start(&self, deadline: Instant) -> Result<NatsServer, StartFailure> {
        let cluster = self.cluster;
        let name = format!("{}-leaf{}", cluster.name, cluster.leaves.fetch_add(1, Ordering::Relaxed));
        let monitor = process::free_port().map_err(StartFailure::Other)?;
        let remotes: Vec<String> = cluster.leafnode_urls().iter().map(|url| format!("\"{url}\"")).collect();
        let mapping = if self.map_jetstream_to_hub {
            format!("default_js_domain: {{ \"$G\": \"{HUB_DOMAIN}\" }}\n")
        } else {
            String::new()
        };
        let config = format!(
            "server_name: \"{name}\"\n\
             http: \"127.0.0.1:{monitor}\"\n\
             {mapping}\
             leafnodes {{\n  remotes: [\n    {{ urls: [{urls}] }}\n  ]\n}}\n",
            urls = remotes.join(", "),
        );
        let mut leaf = NatsServer::builder().jetstream(false).config(config).try_start().map_err(|failure| {
            failure.context(format!("starting leaf node {name} of NATS cluster {}", cluster.name))
        })?;
        let probe_subject =
            if self.map_jetstream_to_hub { "$JS.API.INFO".to_owned() } else { format!("$JS.{HUB_DOMAIN}.API.INFO") };
        let started = Instant::now();
        loop {
            if !leaf.is_running() {
                return Err(StartFailure::Exited(anyhow!(
                    "leaf node {name} exited\n{}",
                    process::log_tail(&leaf.log_path())
                )));
            }
            let reason = match check_leaf(monitor, leaf.port(), &probe_subject) {
                Ok(()) => return Ok(leaf),
                Err(reason) => reason,
            };
            if Instant::now() >= deadline {
                return Err(StartFailure::Other(anyhow!(
                    "leaf node {name} not connected to NATS cluster {} after {:?} (last check: {reason})\n{}",
                    cluster.name,
                    started.elapsed(),
                    process::log_tail(&leaf.log_path())
                )));
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }
}

/// `Ok` once the leaf (monitoring port `monitor`, client port `port`) has a leaf connection and its
/// clients get an answer on `subject`.
fn check_leaf(monitor: u16, port: u16, subject: &str) -> Result<(), String> {
    let leafz = http_get_json(monitor, "/leafz")?;
    if leafz["leafnodes"].as_u64().unwrap_or(0) == 0 {
        return Err("no leaf connection to the hub yet".to_owned());
    }
    nats_request(port, subject, "").map(drop)
}

/// `GET path` on the monitoring port, parsed as JSON.
fn http_get_json(port: u16, path: &str) -> Result<Value, String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = connect(addr)?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n")
        .map_err(|e| format!("sending GET {path} to {addr}: {e}"))?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).map_err(|e| format!("reading GET {path} from {addr}: {e}"))?;
    let response = String::from_utf8_lossy(&response);
    let (head, body) =
        response.split_once("\r\n\r\n").ok_or_else(|| format!("GET {path} from {addr}: no HTTP response"))?;
    if head.split(' ').nth(1) != Some("200") {
        return Err(format!("GET {path} from {addr}: {}", head.lines().next().unwrap_or_default()));
    }
    serde_json::from_str(body).map_err(|e| format!("GET {path} from {addr}: bad JSON ({e}): {body}"))
}

/// One request over a fresh raw NATS connection to 127.0.0.1:`port`; the reply parsed as JSON. A JetStream
/// error reply, "no responders" (503) or no reply within [`PROBE_TIMEOUT`] is an `Err`.
fn nats_request(port: u16, subject: &str, payload: &str) -> Result<Value, String> {
    const INBOX: &str = "_INBOX.lattice-harness.probe";
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut writer = connect(addr)?;
    let mut reader = BufReader::new(writer.try_clone().map_err(|e| format!("cloning a socket: {e}"))?);
    let read_line = |reader: &mut BufReader<TcpStream>| {
        let mut line = String::new();
        reader.read_line(&mut line).map_err(|e| format!("{subject} via {addr}: {e}"))?;
        if line.is_empty() {
            return Err(format!("{subject} via {addr}: connection closed"));
        }
        Ok(line.trim_end().to_owned())
    };
    let info = read_line(&mut reader)?;
    if !info.starts_with("INFO ") {
        return Err(format!("{addr} greeted with {info:?}, not INFO"));
    }
    let request = format!(
        "CONNECT {{\"verbose\":false,\"pedantic\":false,\"headers\":true,\"no_responders\":true}}\r\n\
         SUB {INBOX} 1\r\nPUB {subject} {INBOX} {}\r\n{payload}\r\n",
        payload.len()
    );
    writer.write_all(request.as_bytes()).map_err(|e| format!("{subject} via {addr}: {e}"))?;
    loop {
        let line = read_line(&mut reader)?;
        if line == "PING" {
            writer.write_all(b"PONG\r\n").map_err(|e| format!("{subject} via {addr}: {e}"))?;
            continue;
        }
        if line.starts_with("-ERR") {
            return Err(format!("{subject} via {addr}: {line}"));
        }
        let (headers, total) = match line.split(' ').collect::<Vec<_>>().as_slice() {
            ["MSG", _, _, .., len] => (0, len.parse::<usize>().ok()),
            ["HMSG", _, _, .., header_len, len] => (header_len.parse::<usize>().unwrap_or(0), len.parse().ok()),
            _ => continue, // PONG, +OK, INFO updates
        };
        let total = total.ok_or_else(|| format!("{subject} via {addr}: bad message line {line:?}"))?;
        let mut body = vec![0; total + 2];
        reader.read_exact(&mut body).map_err(|e| format!("{subject} via {addr}: {e}"))?;
        let (head, body) = body[..total].split_at(headers.min(total));
        let status = String::from_utf8_lossy(head);
        let status = status.lines().next().unwrap_or_default().trim();
        if !status.is_empty() && status != "NATS/1.0" {
            let status = if status.contains(" 503") { "no responders (503)" } else { status };
            return Err(format!("{subject} via {addr}: {status}"));
        }
        let reply: Value = serde_json::from_slice(body)
            .map_err(|e| format!("{subject} via {addr}: bad JSON ({e}): {}", String::from_utf8_lossy(body)))?;
        if let Some(error) = reply.get("error") {
            return Err(format!("{subject} via {addr}: {error}"));
        }
        return Ok(reply);
    }
}

fn connect(addr: SocketAddr) -> Result<TcpStream, String> {
    let stream = TcpStream::connect_timeout(&addr, PROBE_TIMEOUT).map_err(|e| format!("connecting to {addr}: {e}"))?;
    stream
        .set_read_timeout(Some(PROBE_TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(PROBE_TIMEOUT)))
        .map_err(|e| format!("setting timeouts on {addr}: {e}"))?;
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_routes_to_every_other_node() {
        let ports = [
            NodePorts { cluster: 1001, leafnode: 2001, monitor: 3001 },
            NodePorts { cluster: 1002, leafnode: 2002, monitor: 3002 },
            NodePorts { cluster: 1003, leafnode: 2003, monitor: 3003 },
        ];
        let config = node_config("c", "c-n1", ports[1], &ports);
        assert_eq!(
            config,
            "server_name: \"c-n1\"\n\
             http: \"127.0.0.1:3002\"\n\
             jetstream {\n  domain: \"hub\"\n}\n\
             cluster {\n  name: \"c\"\n  listen: \"127.0.0.1:1002\"\n  \
             routes: [\"nats-route://127.0.0.1:1001\", \"nats-route://127.0.0.1:1003\"]\n}\n\
             leafnodes {\n  listen: \"127.0.0.1:2002\"\n}\n"
        );
    }
}
