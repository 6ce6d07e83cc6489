"""A node's configuration: one schema, four layers, every problem reported at once.

Layers, lowest first: Wolfpack's defaults < the node's TOML file < the
environment (``WOLFPACK_<SECTION>_<KEY>``, e.g. ``WOLFPACK_NODE_ID=2`` or
``WOLFPACK_TIMING_HEARTBEAT_PERIOD_MS=200``) < cluster-wide values, which an
administrator sets with ``wolfpack cluster set`` (a global update, so every
node has the same) for the keys marked *cluster-wide* below.  Cluster-wide
values take effect for the resources and groups built after the update (the
resource defaults, the monitors' intervals); the protocol timings
(heartbeats, regroup, take-over wait) are read when the daemon starts.

The file::

    [cluster]
    name = "lab"                       # every node of a cluster has the same name, key and node list
    key_file = "/etc/wolfpack/cluster.key"   # or: key = "<64 hex digits>"
    quorum = "mns"                     # Majority Node Set, or "disk": a shared quorum disk
    # quorum_disk = "iscsi://10.0.0.9:3260/iqn.2026-01.lab:quorum/1"   # with quorum = "disk"
    # arbitration = "scsi3"            # persistent reservations (or "scsi2": MSCS reserve/reset)

    [node]
    id = 0                             # which of [[nodes]] this is
    data_dir = "/var/lib/wolfpack"

    [admin]
    listen = "127.0.0.1:7410"          # the HTTP/JSON admin API
    token_file = "/etc/wolfpack/admin.token"

    [timing]                           # the keys of `wolfpack verify --config` (docs/verification.md)
    heartbeat_period_ms = 100

    [[nodes]]
    id = 0
    address = "10.0.0.1:7400"          # node-to-node transport (TCP)
    heartbeat = ["10.0.1.1:7401", "10.0.2.1:7401"]   # one UDP address per heartbeat network
    admin = "10.0.0.1:7410"            # where other nodes forward admin requests (optional)

The timing obligations of ``wolfpack verify`` are checked on the merged
values; a violated one is an error, with its inequality and numbers.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wolfpack.errors import ConfigError
from wolfpack.hw.device import shared_disk_problem
from wolfpack.hw.watchdog import watchdog_problem
from wolfpack.proofs import timing
from wolfpack.runtime.node.layout import ARBITRATIONS, QUORUMS
from wolfpack.spec import defaults as d

ENV_PREFIX = "WOLFPACK_"
MAX_NODES = 64
Address = tuple[str, int]


@dataclass(frozen=True)
class Setting:
    section: str
    key: str
    kind: type
    default: Any
    doc: str
    cluster_wide: bool = False
    check: Callable[[Any], str | None] | None = None

    @property
    def name(self) -> str:
        return f"{self.section}.{self.key}"


def _positive(value: Any) -> str | None:
    return None if value >= 1 else "must be >= 1"


def _at_least(lo: int) -> Callable[[Any], str | None]:
    return lambda value: None if value >= lo else f"must be >= {lo}"


def _quorum(value: Any) -> str | None:
    return None if value in QUORUMS else f"must be one of {', '.join(QUORUMS)}"


def _address_text(value: Any) -> str | None:
    try:
        parse_address(value, "")
    except ConfigError as exc:
        return str(exc)
    return None


#: every scalar setting; ``[[nodes]]`` is checked apart (a list of tables)
SETTINGS: tuple[Setting, ...] = (
    Setting("cluster", "name", str, None, "the cluster's name (the same on every node)"),
    Setting("cluster", "key", str, "", "the cluster key, 64 hex digits (or key_file)"),
    Setting("cluster", "key_file", str, "", "a file holding the cluster key (hex)"),
    Setting("cluster", "quorum", str, "mns", "quorum: mns (Majority Node Set) or disk", check=_quorum),
    Setting("cluster", "quorum_disk", str, "", "the shared quorum disk when quorum = \"disk\" (every node the "
            "same): iscsi://HOST:PORT/TARGET-IQN/LUN or sg:///dev/sgN; the quorum log lives on it from block 0"),
    Setting("cluster", "arbitration", str, "scsi3", "how nodes arbitrate for the quorum disk: scsi3 (persistent "
            "reservations, the owner fences the others) or scsi2 (MSCS reserve, reset and challenge)",
            check=lambda v: None if v in ARBITRATIONS else f"must be one of {', '.join(ARBITRATIONS)}"),
    Setting("cluster", "max_groups", int, 16, "group slots of the failover manager", check=_positive),
    Setting("cluster", "fencing", str, "required" if d.FENCING_REQUIRED else "off",
            "required: the survivors fence a lost owner (STONITH, with the fence devices of `wolfpack fence add`) "
            "before they take over its groups, and a failed fence leaves them offline; off: they rely on the lease "
            "and the quorum alone", cluster_wide=True,
            check=lambda v: None if v in ("off", "required") else "must be off or required"),
    Setting("cluster", "fence_action", str, "reboot", "what a fence does to a lost node: reboot (Pacemaker's "
            "default: it comes back and rejoins) or off", cluster_wide=True,
            check=lambda v: None if v in ("off", "reboot") else "must be off or reboot"),
    Setting("cluster", "fence_timeout_ms", int, 60_000, "how long one fence agent may take (each device that "
            "covers the node is tried in turn)", cluster_wide=True, check=_positive),
    Setting("node", "id", int, None, "this node's id, one of [[nodes]]"),
    Setting("node", "data_dir", str, None, "the node's database, quorum log, state and logs"),
    Setting("node", "run_dir", str, "", "sockets and monitor files (default: DATA_DIR/run)"),
    Setting("node", "log_level", str, "info", "debug, info, warning or error",
            check=lambda v: None if v in ("debug", "info", "warning", "error") else
            "must be debug, info, warning or error"),
    Setting("node", "initiator", str, "", "this node's iSCSI initiator name for the quorum disk (default: "
            "iqn.2026-01.org.wolfpack:CLUSTER.nodeID)"),
    Setting("node", "join", bool, True, "join the cluster at start (false: wait for `wolfpack node join`)"),
    Setting("node", "rejoin_after_ms", int, 2000, "after the node halted (left out of a membership, quorum "
            "lost), start its cluster role again this much later, as a service manager restarts a failed "
            "service (0: never; `wolfpack node join` then does)",
            check=lambda v: None if v >= 0 else "must be >= 0"),
    Setting("node", "watchdog", str, "none", "a hardware watchdog the daemon pets only while its lease is fresh, so "
            "a hang of the whole node resets it (SBD-style): \"none\" (the default) or a device such as "
            "/dev/watchdog (softdog, iTCO_wdt, ipmi_watchdog...)", check=watchdog_problem),
    Setting("node", "watchdog_timeout_s", int, 5, "the watchdog's timeout: a node that stops petting it is reset "
            "this long after the last pet", check=_positive),
    Setting("admin", "listen", str, "127.0.0.1:0", "the admin API's HOST:PORT (port 0: any free port)",
            check=_address_text),
    Setting("admin", "socket", str, "", "also serve the admin API on this Unix socket (default: RUN_DIR/admin.sock; "
            "'none': no socket)"),
    Setting("admin", "token", str, "", "the admin API token (or token_file); empty: no API writes"),
    Setting("admin", "token_file", str, "", "a file holding the admin API token"),
    Setting("monitor", "looks_alive_ms", int, d.LOOKS_ALIVE_INTERVAL_MS,
            "default LooksAlive interval of resources", cluster_wide=True, check=_positive),
    Setting("monitor", "is_alive_ms", int, d.IS_ALIVE_INTERVAL_MS,
            "default IsAlive interval of resources", cluster_wide=True, check=_positive),
    *(Setting("timing", v.name, int, v.default, v.doc, cluster_wide=True, check=_at_least(v.lo))
      for v in timing.VARIABLES),
)
BY_NAME = {s.name: s for s in SETTINGS}
SECTIONS = sorted({s.section for s in SETTINGS} | {"nodes"})


@dataclass(frozen=True)
class NodeEntry:
    id: int
    address: Address
    heartbeat: tuple[Address, ...]
    admin: Address | None


@dataclass(frozen=True)
class NodeConfig:
    values: Mapping[str, Any]  # "section.key" -> merged value
    nodes: tuple[NodeEntry, ...]
    key: bytes
    token: str
    source: str

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    @property
    def node_id(self) -> int:
        return int(self.values["node.id"])

    @property
    def n(self) -> int:
        return max(e.id for e in self.nodes) + 1

    @property
    def me(self) -> NodeEntry:
        return self.entry(self.node_id)

    def entry(self, node: int) -> NodeEntry:
        return next(e for e in self.nodes if e.id == node)

    @property
    def data_dir(self) -> Path:
        return Path(self.values["node.data_dir"])

    @property
    def run_dir(self) -> Path:
        return Path(self.values["node.run_dir"] or self.data_dir / "run")

    @property
    def admin_socket(self) -> Path | None:
        value = str(self.values["admin.socket"])
        return None if value == "none" else Path(value) if value else self.run_dir / "admin.sock"

    @property
    def initiator(self) -> str:
        """This node's iSCSI initiator name (its I_T nexus to the quorum disk)."""
        name = str(self.values["cluster.name"]).lower()
        cleaned = "".join(c if c.isalnum() or c in ".-" else "-" for c in name) or "cluster"
        return str(self.values["node.initiator"]) or f"iqn.2026-01.org.wolfpack:{cleaned}.node{self.node_id}"

    @property
    def timing(self) -> dict[str, int]:
        return {v.name: int(self.values[f"timing.{v.name}"]) for v in timing.VARIABLES}

    def with_cluster_values(self, cluster: Mapping[str, Any]) -> NodeConfig:
        """This configuration with the cluster-wide layer on top (values already checked)."""
        merged = dict(self.values)
        merged.update({k: v for k, v in cluster.items() if k in BY_NAME and BY_NAME[k].cluster_wide})
        return NodeConfig(merged, self.nodes, self.key, self.token, self.source)


def parse_address(value: Any, what: str) -> Address:
    """``HOST:PORT`` (``[v6]:PORT`` for IPv6) with a numeric host."""
    if not isinstance(value, str) or ":" not in value:
        raise ConfigError(f"{what}{value!r} is not HOST:PORT; write it as '10.0.0.1:7400'")
    host, _, port_text = value.rpartition(":")
    host = host.strip("[]")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ConfigError(f"{what}{host!r} is not a numeric IP address; node addresses are never resolved "
                          "(a DNS failure must not look like a dead node): use e.g. '10.0.0.1:7400'") from None
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ConfigError(f"{what}port {port_text!r} is not a number in 0..65535")
    return host, int(port_text)


def _coerce(setting: Setting, raw: Any, source: str) -> tuple[Any, str | None]:
    value = raw
    if isinstance(raw, str) and setting.kind is not str:
        text = raw.strip()
        try:
            if setting.kind is bool:
                if text.lower() not in ("1", "0", "true", "false", "yes", "no"):
                    raise ValueError
                value = text.lower() in ("1", "true", "yes")
            else:
                value = setting.kind(text)
        except ValueError:
            return raw, f"{setting.name} ({source}) must be a {setting.kind.__name__}, got {raw!r}"
    if setting.kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        return raw, f"{setting.name} ({source}) must be a whole number ({setting.doc}), got {raw!r}"
    if not isinstance(value, setting.kind):
        return raw, f"{setting.name} ({source}) must be a {setting.kind.__name__} ({setting.doc}), got {raw!r}"
    if setting.check is not None:
        why = setting.check(value)
        if why is not None:
            return raw, f"{setting.name} ({source}) {why}, got {raw!r}"
    return value, None


def _nodes(raw: Any, source: str, problems: list[str]) -> tuple[NodeEntry, ...]:
    if not isinstance(raw, list) or not raw:
        problems.append(f"{source}: no [[nodes]] tables: list every node of the cluster, each with id and address")
        return ()
    entries: list[NodeEntry] = []
    for index, table in enumerate(raw):
        where = f"{source}: [[nodes]] number {index + 1}"
        if not isinstance(table, dict):
            problems.append(f"{where} is not a table")
            continue
        unknown = sorted(set(table) - {"id", "address", "heartbeat", "admin"})
        if unknown:
            problems.append(f"{where} has unknown keys {', '.join(unknown)} (known: id, address, heartbeat, admin)")
        node = table.get("id")
        if isinstance(node, bool) or not isinstance(node, int) or not 0 <= node < MAX_NODES:
            problems.append(f"{where}: id {node!r} is not a whole number in 0..{MAX_NODES - 1}")
            continue
        try:
            address = parse_address(table.get("address"), f"{where} address: ")
            beats = table.get("heartbeat", [f"{_host_text(address[0])}:{address[1] + 1}"])
            if not isinstance(beats, list) or not beats:
                raise ConfigError(f"{where}: heartbeat must be a list of HOST:PORT, one per heartbeat network")
            heartbeat = tuple(parse_address(b, f"{where} heartbeat: ") for b in beats)
            admin = parse_address(table["admin"], f"{where} admin: ") if "admin" in table else None
        except ConfigError as exc:
            problems.append(str(exc))
            continue
        entries.append(NodeEntry(node, address, heartbeat, admin))
    ids = [e.id for e in entries]
    if len(set(ids)) != len(ids):
        problems.append(f"{source}: node ids repeat in [[nodes]] ({sorted(ids)}); give each node its own id")
    networks = {len(e.heartbeat) for e in entries}
    if len(networks) > 1:
        problems.append(f"{source}: the nodes list different numbers of heartbeat networks ({sorted(networks)}); "
                        "give every node one address on each network, in the same order")
    return tuple(sorted(entries, key=lambda e: e.id))


def _host_text(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _secret(values: Mapping[str, Any], inline: str, file_key: str, what: str, problems: list[str]) -> str:
    text = str(values[inline])
    path = str(values[file_key])
    if text and path:
        problems.append(f"both {inline} and {file_key} are set; keep one")
    if path:
        try:
            text = Path(path).read_text().strip()
        except OSError as exc:
            problems.append(f"cannot read {file_key} {path}: {exc.strerror}; give the {what} file's path")
    return text


def load(path: Path | None, *, environ: Mapping[str, str] | None = None,
         overrides: Mapping[str, Any] | None = None) -> NodeConfig:
    """Merge defaults, the file, the environment and ``overrides`` ("section.key" -> value); check it all."""
    environ = os.environ if environ is None else environ
    problems: list[str] = []
    data: dict[str, Any] = {}
    source = str(path) if path is not None else "(no file)"
    if path is not None:
        try:
            data = tomllib.loads(path.read_text())
        except OSError as exc:
            raise ConfigError(f"cannot read the configuration {path}: {exc.strerror}; give an existing file "
                              "(`wolfpack cluster create` writes one per node)") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path} is not valid TOML: {exc}; fix the syntax") from exc
    values: dict[str, Any] = {s.name: s.default for s in SETTINGS}
    for section, table in data.items():
        if section == "nodes":
            continue
        if section not in SECTIONS or not isinstance(table, dict):
            problems.append(f"{source}: unknown section [{section}] (known: {', '.join(SECTIONS)})")
            continue
        for key, raw in table.items():
            setting = BY_NAME.get(f"{section}.{key}")
            if setting is None:
                known = ", ".join(s.key for s in SETTINGS if s.section == section)
                problems.append(f"{source}: unknown key {key!r} in [{section}] (known: {known})")
                continue
            value, why = _coerce(setting, raw, source)
            if why:
                problems.append(why)
            else:
                values[setting.name] = value
    for name, raw_text in environ.items():
        if not name.startswith(ENV_PREFIX) or name in ("WOLFPACK_HEARTBEAT", "WOLFPACK_HYPOTHESIS_PROFILE"):
            continue
        setting = next((s for s in SETTINGS if f"{ENV_PREFIX}{s.section}_{s.key}".upper() == name), None)
        if setting is None:
            continue
        value, why = _coerce(setting, raw_text, f"environment {name}")
        if why:
            problems.append(why)
        else:
            values[setting.name] = value
    values.update(_checked(overrides or {}, "command line", problems))
    for setting in SETTINGS:
        if setting.default is None and values[setting.name] is None:
            problems.append(f"{setting.name} is missing ({setting.doc}); set it in [{setting.section}] "
                            f"or as {ENV_PREFIX}{setting.section.upper()}_{setting.key.upper()}")
    nodes = _nodes(data.get("nodes"), source, problems)
    key_text = _secret(values, "cluster.key", "cluster.key_file", "cluster key", problems)
    key = b""
    try:
        key = bytes.fromhex(key_text)
    except ValueError:
        problems.append("the cluster key is not hex digits; `wolfpack cluster create` writes a good one")
    if key_text and len(key) < 16:
        problems.append(f"the cluster key has {len(key)} bytes; use at least 16 (32 recommended)")
    if not key_text and values["cluster.key_file"] == "":
        problems.append("no cluster key: set cluster.key_file (or cluster.key) to the same secret on every node")
    token = _secret(values, "admin.token", "admin.token_file", "admin token", problems)
    if values["node.id"] is not None and nodes and all(e.id != values["node.id"] for e in nodes):
        problems.append(f"node.id {values['node.id']} is not one of the [[nodes]] ids "
                        f"({', '.join(str(e.id) for e in nodes)})")
    if values["cluster.quorum"] == "mns" and len(nodes) == 2:
        problems.append("Majority Node Set quorum needs 3 or more nodes: with 2, losing either one stops the "
                        "cluster. Add a node, or use quorum = \"disk\"")
    if values["cluster.quorum"] == "disk":
        disk = str(values["cluster.quorum_disk"] or "")
        why = shared_disk_problem(disk) if disk else "is missing"
        if why:
            problems.append(f"cluster.quorum_disk {disk!r} {why} (quorum = \"disk\" needs the quorum disk's URL)"
                            if disk else "quorum = \"disk\" needs cluster.quorum_disk, the shared disk's URL "
                            "(iscsi://HOST:PORT/TARGET-IQN/LUN or sg:///dev/sgN)")
    violated = timing.check({v.name: values[f"timing.{v.name}"] for v in timing.VARIABLES})
    problems += [f"timing obligation violated: {v}" for v in violated]
    if problems:
        raise ConfigError(f"{source}: {len(problems)} problem(s):\n  " + "\n  ".join(problems))
    return NodeConfig(values, nodes, key, token, source)


def _checked(raw: Mapping[str, Any], source: str, problems: list[str], *, cluster_wide: bool = False) -> dict[str, Any]:
    """``raw`` ("section.key" -> value) coerced and checked; what is wrong goes to ``problems``."""
    checked: dict[str, Any] = {}
    for name, value in raw.items():
        setting = BY_NAME.get(name)
        if setting is None or (cluster_wide and not setting.cluster_wide):
            wide = ", ".join(s.name for s in SETTINGS if s.cluster_wide)
            problems.append(f"{name} is not a cluster-wide setting (those are: {wide})" if cluster_wide
                            else f"unknown setting {name!r}")
            continue
        coerced, why = _coerce(setting, value, source)
        if why:
            problems.append(why)
        else:
            checked[name] = coerced
    return checked


def check_cluster_values(base: NodeConfig, changes: Mapping[str, Any]) -> dict[str, Any]:
    """Validate cluster-wide values (``wolfpack cluster set``) on top of ``base``; every problem at once."""
    problems: list[str] = []
    checked = _checked(changes, "cluster set", problems, cluster_wide=True)
    merged = base.with_cluster_values(checked)
    problems += [f"timing obligation violated: {v}" for v in timing.check(merged.timing)]
    if problems:
        raise ConfigError(f"{len(problems)} problem(s):\n  " + "\n  ".join(problems))
    return checked


def describe() -> list[dict[str, Any]]:
    """The schema, for `wolfpackd --help-config` and the docs."""
    return [{"name": s.name, "type": s.kind.__name__, "default": s.default, "cluster_wide": s.cluster_wide,
             "doc": s.doc} for s in SETTINGS]


def render(values: Mapping[str, Any], nodes: Sequence[NodeEntry]) -> str:
    """A node file (TOML) for ``values`` ("section.key" -> value; only what differs from the defaults)."""
    lines: list[str] = []
    for section in [s for s in SECTIONS if s != "nodes"]:
        rows = [(s.key, values[s.name]) for s in SETTINGS
                if s.section == section and s.name in values and values[s.name] != s.default]
        if rows:
            lines.append(f"[{section}]")
            lines += [f"{k} = {_toml(v)}" for k, v in rows]
            lines.append("")
    for e in nodes:
        lines += ["[[nodes]]", f"id = {e.id}", f"address = {_toml(_addr(e.address))}",
                  "heartbeat = [" + ", ".join(_toml(_addr(a)) for a in e.heartbeat) + "]"]
        if e.admin is not None:
            lines.append(f"admin = {_toml(_addr(e.admin))}")
        lines.append("")
    return "\n".join(lines)


def _addr(address: Address) -> str:
    return f"{_host_text(address[0])}:{address[1]}"


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
