"""Message-level products: N copies of one spec, the messages in flight between them, and crashes.

Nothing here knows a particular machine.  A :class:`NetworkModel` names a
spec, the cluster size and what the environment may do; :class:`NetworkSystem`
turns it into a z3 transition system in which every rule is the spec's own
(guards, updates and ``send`` effects evaluated on symbolic records).

Components: ``node0 .. node{N-1}`` (the spec, ``me`` fixed to the node's id)
and ``net``, a record with one slot per (message type, sender, receiver)
plus the model's ghost fields.  In one step every node takes at most one
action (see :class:`NetworkSystem` for why that covers every interleaving):

* **a local event**: one of the model's ``local`` triggers (heartbeat
  suspicions, boot, ...) with any valid arguments, at any time; a timer only
  while it runs (started by the node's own ``start_timer`` effect, neither
  cancelled nor fired since), at any moment: every timing;
* **a delivery** of the message in slot (type, s, d): node d handles the
  event of that name with ``src = s`` and the slot's fields, by one of its
  rows or by ignoring it where its spec says so.  The slot is emptied, or
  kept (the network duplicated the message);
* **a crash**: the node's record restarts from the spec's initial values,
  except the model's ``durable`` fields (what the node keeps on disk), so a
  crash followed by ``boot`` is a restart.  Messages it sent stay in flight
  (decision 8 of the design notes).

The rows a step fires write their ``send`` effects into the slots (``to =
-1``: every other node).  A message may stay in flight for ever, which is what
a lost message is to a safety property, and a send into a full slot
overwrites it: loss, duplication, delay and reordering across slots are all
covered; two messages of one type from one node to another are never in
flight at once.

Ghost fields (the history a property needs, such as the set installed at each
epoch) are updated by the model's :class:`Ghost` from the rows each step fires.
The parameters a model fixes (each node's id, ...) are constants of the step,
and fields that no condition of a step, no property and no witness depends on
(transitively) are left out of the search (:meth:`NetworkSystem._cone`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import z3

from wolfpack.errors import SpecError
from wolfpack.proofs.backend import to_bool, to_term
from wolfpack.proofs.model import Component, Model, Property
from wolfpack.proofs.system import Choice, Frame, System
from wolfpack.proofs.trace import Step
from wolfpack.spec.core import Field, Record, Spec, Transition
from wolfpack.spec.expr import And, If, Not, Or

NET = "net"
#: the row number shown for steps of the environment (a crash): not a row of the spec
ENV_STEP = -1
IGNORED = -2
NOT_INVOLVED = -1
CRASHED = -3
TIMER_SUFFIX = "_elapsed"


def node(k: int) -> str:
    return f"node{k}"


def slot(n: int, src: int, dst: int) -> int:
    return src * n + dst


def message_fields(spec: Spec) -> dict[str, tuple[str, ...]]:
    """Message type -> its fields besides ``src``: every ``send`` of the spec, with the arguments of the event
    of the same name (the receiver's view of the message)."""
    out: dict[str, tuple[str, ...]] = {}
    for name in sorted({e.name for t in spec.transitions for e in t.effects if e.kind == "send"}):
        args = [a.name for a in spec.event(name).args]
        if "src" not in args:
            raise SpecError(f"{spec.name}: message {name} has no src argument; a received message names its sender")
        out[name] = tuple(a for a in args if a != "src")
    return out


@dataclass(frozen=True)
class FiredRow:
    """A row node ``who`` may fire in a step (``fired``: it does), with the terms a ghost reads."""

    who: int
    row: Transition
    fired: z3.BoolRef
    before: Record
    args: Record
    after: Record


class Ghost:
    """The model-specific history: extra fields of ``net``, their updates, and steps the model does not take."""

    fields: tuple[Field, ...] = ()
    solo: tuple[str, ...] = ()  # local events whose ``allowed`` reads the ghost: they take a step alone

    def allowed(self, system: NetworkSystem, k: int, trigger: str, env: Record) -> Any:
        """May node k's local event ``trigger`` happen now (default: always)."""
        return True

    def updates(self, system: NetworkSystem, env: Record, fired: Sequence[FiredRow]) -> dict[str, Any]:
        """Next values of ghost fields (the others stay)."""
        return {}

    def limits(self, system: NetworkSystem, env: Record, fired: Sequence[FiredRow]) -> list[Any]:
        """Conditions every step must meet (a bounded ghost: a step past the bound is not taken)."""
        return []


@dataclass(frozen=True)
class NetworkModel:
    """What :class:`NetworkSystem` needs besides the generic :class:`Model`."""

    spec: Spec
    n: int
    local: tuple[str, ...]  # triggers the environment fires at a node (with any valid arguments)
    durable: tuple[str, ...]  # fields a crash keeps
    fixed: Mapping[str, Any] = field(default_factory=dict)  # parameters every node has (besides me)
    ghost: Ghost = field(default_factory=Ghost)

    def timers(self) -> tuple[str, ...]:
        """The local events that are timers: some row starts them (``start_timer``).  One fires only while it runs:
        started and neither cancelled nor fired since (a crash stops them all), at any moment (every timing)."""
        started = {e.name for t in self.spec.transitions for e in t.effects if e.kind == "start_timer"}
        return tuple(t for t in self.local if t in started)

    def check(self) -> None:
        """Every event of the spec is a message or a local event, or the model must say why it leaves it out."""
        messages = message_fields(self.spec)
        for name in self.local:
            if name in messages:
                raise SpecError(f"{self.spec.name}: {name} is a message; it cannot also be a local event")
            self.spec.event(name)
        for f in self.durable:
            if self.spec.field(f).param:
                raise SpecError(f"{self.spec.name}: {f} is a parameter; parameters survive every crash anyway")


def env_spec(net: NetworkModel) -> Spec:
    """The network's slots and the ghost fields, as a record (no rows: the steps change it)."""
    n, pairs = net.n, net.n * net.n
    fields: list[Field] = []
    for name, args in message_fields(net.spec).items():
        fields.append(Field(f"{name}__in", bool, (False,) * pairs, f"a {name} is in flight [src*n+dst]",
                            length=pairs))
        for a in args:
            fields.append(Field(f"{name}__{a}", int, (0,) * pairs, f"{a} of that {name}", length=pairs))
    fields.append(Field("crashed", bool, (False,) * n, "node k has crashed at least once", length=n))
    for name in net.timers():
        fields.append(Field(f"timer__{name}", bool, (False,) * n, f"node k's {name} timer is running", length=n))
    fields += list(net.ghost.fields)
    return Spec(name="network", doc=f"the messages in flight between {n} {net.spec.name} nodes, and ghosts",
                states=("Up",), initial="Up", fields=tuple(fields), events=(), transitions=())


def network_components(net: NetworkModel) -> tuple[Component, ...]:
    net.check()
    nodes = tuple(Component(node(k), net.spec, {**net.fixed, "me": k}) for k in range(net.n))
    return (*nodes, Component(NET, env_spec(net)))


@dataclass(frozen=True)
class Action:
    kind: str  # "local", "deliver", "crash"
    node: int
    trigger: str = ""
    src: int = -1


class NetworkSystem(System):
    """The transition system of a message-level model (build it inside ``symbolic()``).

    Steps are *parallel*: in one step every node takes at most one action of its own (a local event, the
    delivery of one message to it, or its crash), and the step's outcome is the one of taking those actions one
    after the other in node id order.  A step where node k would read a message that a lower node sends it in the
    same step is not taken (that order would deliver the new message), nor one where a ``solo`` event of the
    ghost shares its step.  Every run of single actions is a run of the model (one node acting per step), and
    every state a run of parallel steps passes through is reached by single actions too: the model is the
    interleaving one, with more happening per step, so a bounded search of N steps covers every interleaving of N
    actions and many longer ones.
    """

    defs: dict[str, tuple[Any, z3.ExprRef]]  # next-frame variable -> its value (over this frame and the choices)
    others: list[z3.BoolRef]  # every other condition of a step
    relevant: set[str]  # the variables the checks depend on (base names)

    def __init__(self, model: Model, net: NetworkModel) -> None:
        self.net = net
        self.n = net.n
        self.spec = net.spec
        self.messages = message_fields(net.spec)
        self.timers = net.timers()
        self.actions = [[Action("idle", k), *(Action("local", k, t) for t in net.local),
                         *(Action("deliver", k, m, s) for m in self.messages for s in range(self.n) if s != k),
                         Action("crash", k)] for k in range(self.n)]
        super().__init__(model)
        self._fix_parameters()
        self.relevant = self._cone()
        kept = [post == value if base(str(post)) in self.relevant else post == self._pre[str(post)]
                for post, value in self.defs.values()]
        self.template = z3.And(*self.others, *[to_bool(k) for k in kept])

    def _fix_parameters(self) -> None:
        """Put the values of the parameters the model fixes (each node's id, the quorum kind, ...) into the step, so
        that the solver never branches on them."""
        pairs: list[tuple[z3.ExprRef, z3.ExprRef]] = []
        for c in self.model.components:
            rec = self.x.parts[c.name]
            for key, value in c.fixed.items():
                var = rec.value(key)
                for v, concrete in (zip(var, value, strict=True) if isinstance(var, tuple) else ((var, value),)):
                    pairs.append((v, to_term(int(concrete) if not isinstance(concrete, bool) else concrete)))
        if pairs:
            self.others = [z3.simplify(z3.substitute(t, *pairs)) for t in self.others]
            self.defs = {k: (var, z3.simplify(z3.substitute(value, *pairs))) for k, (var, value) in self.defs.items()}

    # -- the cone of influence -----------------------------------------------------------
    def _cone(self) -> set[str]:
        """The fields (and slots, and ghosts) the checks depend on: those the step's conditions, the properties and
        the witnesses read, and everything their next values read, transitively.  The others (such as what a node
        only reports to other machines) are not searched: they keep their initial values in the solver's runs,
        and :func:`~wolfpack.proofs.network_run.replay_network_run` computes them."""
        self._pre = {str(v): u for u, v in zip(self.x.variables, self.y.variables, strict=True)}
        seeds = [*self.others, *(self.holds(p, self.x) for p in (*self.properties, *self.model.witnesses))]
        relevant = {base(name) for term in seeds for name in free_names(term)}
        defs = {base(name): value for name, (_, value) in self.defs.items()}
        todo = list(relevant)
        while todo:
            value = defs.get(todo.pop())
            if value is None:
                continue
            for name in free_names(value):
                b = base(name)
                if b not in relevant:
                    relevant.add(b)
                    todo.append(b)
        return relevant

    def well_formed(self, f: Frame) -> z3.BoolRef:
        """Bounds and domain of the fields the checks depend on (the others never change)."""
        out = []
        for name, s in f.parts.items():
            enc = self.encodings[name]
            out += [t for t in (*enc.bounds(s), *enc.domain(s))
                    if any(base(v) in self.relevant for v in free_names(t)) or not free_names(t)]
        return z3.And(*out)

    # -- helpers -------------------------------------------------------------------------
    def env(self, f: Frame) -> Record:
        return f.parts[NET].record

    def acting(self, k: int, pred: Callable[[Action], bool]) -> z3.BoolRef:
        """Node k's action this step satisfies ``pred``."""
        hits = [self.act[k] == i for i, a in enumerate(self.actions[k]) if pred(a)]
        return z3.Or(*hits) if hits else z3.BoolVal(False)

    def event_args(self, k: int, trigger: str, env: Record) -> Record:
        """Node k's arguments for ``trigger`` in this step: free for a local event, the slot's for a message."""
        if trigger not in self.messages:
            return self._args(self.encodings[node(k)], trigger)
        sources = [(i, a.src) for i, a in enumerate(self.actions[k]) if a.kind == "deliver" and a.trigger == trigger]
        act = self.act[k]
        values: dict[str, Any] = {"src": self.chain([(act == i, s) for i, s in sources[:-1]], sources[-1][1])}
        for name in self.messages[trigger]:
            field_values = getattr(env, f"{trigger}__{name}")
            cases = [(act == i, field_values[slot(self.n, s, k)]) for i, s in sources]
            values[name] = self.chain(cases[:-1], cases[-1][1])
        return Record(values)

    # -- the relation --------------------------------------------------------------------
    def _build(self, pre: Frame, post: Frame) -> list[Choice]:
        n = self.n
        env, env2 = self.env(pre), self.env(post)
        self.act = [self.step_var(f"act{k}", z3.IntSort()) for k in range(n)]
        self.rows = [self.step_var(f"row{k}", z3.IntSort()) for k in range(n)]
        self.keep = [self.step_var(f"keep{k}", z3.BoolSort()) for k in range(n)]
        self.step_args: dict[tuple[int, str], Record] = {}
        self.defs = {}
        parts: list[Any] = []
        sends: dict[tuple[str, int, int], list[tuple[Any, dict[str, Any]]]] = {}
        fired_rows: list[FiredRow] = []
        for k in range(n):
            parts += [self.act[k] >= 0, self.act[k] < len(self.actions[k])]
            for i, a in enumerate(self.actions[k]):
                if a.kind == "deliver":
                    parts.append(z3.Implies(self.act[k] == i, to_bool(
                        getattr(env, f"{a.trigger}__in")[slot(n, a.src, k)])))
                elif a.trigger in self.timers:
                    parts.append(z3.Implies(self.act[k] == i, to_bool(getattr(env, f"timer__{a.trigger}")[k])))
                elif a.kind == "local":
                    parts.append(z3.Implies(self.act[k] == i, to_bool(self.net.ghost.allowed(self, k, a.trigger, env))))
            enc = self.encodings[node(k)]
            me, me2 = pre.parts[node(k)], post.parts[node(k)]
            crashed = self.acting(k, lambda a: a.kind == "crash")
            parts.append(z3.Implies(crashed, self.rows[k] == CRASHED))
            parts.append(z3.Implies(self.acting(k, lambda a: a.kind == "idle"), self.rows[k] == NOT_INVOLVED))
            updates: list[tuple[Any, Mapping[str, Any], Any]] = []
            timers: dict[str, list[tuple[str, Any]]] = {}
            for trigger in [*self.net.local, *self.messages]:
                kind = "deliver" if trigger in self.messages else "local"
                handles = self.acting(k, lambda a, t=trigger, kind=kind: a.kind == kind and a.trigger == t)  # type: ignore[misc]
                args = self.step_args[(k, trigger)] = self.event_args(k, trigger, env)
                alternatives = [z3.And(self.rows[k] == IGNORED, enc.ignores(me, trigger))]
                for index, row in enumerate(self.spec.transitions):
                    if row.trigger != trigger:
                        continue
                    fired = z3.And(handles, self.rows[k] == index)
                    # a message's fields are what its sender's effect computed: not range-checked again here
                    enabled = enc.enabled(row, me, args) if kind == "local" else z3.And(
                        enc.state_is(me, *row.source), enc.guard(row, me, args))
                    alternatives.append(z3.And(fired, enabled))
                    changes = enc.next_values(row, me, args)
                    dest = me.state if row.dest is None else z3.IntVal(enc.state_index[row.dest])
                    updates.append((fired, changes, dest))
                    fired_rows.append(FiredRow(k, row, fired, me.record, args, me2.record))
                    self._sends(k, row, fired, me.record, args, me2.record, sends)
                    self._timer_effects(row, fired, me.record, args, timers)
                parts.append(z3.Implies(handles, z3.Or(*alternatives)))
            self._next_record(enc.state_index[self.spec.initial], me, me2, updates, crashed)
            self._define(env2.crashed[k], z3.Or(to_bool(env.crashed[k]), crashed))
            for name in self.timers:
                started = [c for kind, c in timers.get(name, []) if kind == "start_timer"]
                stopped = [c for kind, c in timers.get(name, []) if kind == "cancel_timer"]
                fires = self.acting(k, lambda a, t=name: a.kind == "local" and a.trigger == t)  # type: ignore[misc]
                old = getattr(env, f"timer__{name}")[k]
                self._define(getattr(env2, f"timer__{name}")[k], to_bool(Or(*started, And(
                    old, Not(Or(*stopped, fires, crashed))))))
        parts += self._serialisable(sends)
        self._network(env, env2, sends)
        ghost = self.net.ghost.updates(self, env, fired_rows)
        for f in self.net.ghost.fields:
            new, old = ghost.get(f.name, getattr(env, f.name)), getattr(env, f.name)
            for var, value in zip(*((getattr(env2, f.name), new) if isinstance(old, tuple) else
                                    ((getattr(env2, f.name),), (new,))), strict=True):
                self._define(var, value)
        parts += [to_bool(c) for c in self.net.ghost.limits(self, env, fired_rows)]
        self._define(post.parts[NET].state, pre.parts[NET].state)
        self.others = [to_bool(p) for p in parts]
        holds = z3.And(*self.others, *[to_bool(var == value) for var, value in self.defs.values()])
        self.cost_template = z3.Sum(*[to_term(self.chain(
            [(self.act[k] == i, _weight(a)) for i, a in enumerate(self.actions[k])], 0)) + z3.If(self.keep[k], 1, 0)
            for k in range(n)])
        return [Choice(NET, ENV_STEP, "step", Record({}), holds, [])]

    def cost(self, pre: Frame, post: Frame, tag: str) -> z3.ArithRef:
        """How much happens in a step (a counterexample is shortened by keeping the sum small): a delivery or a
        timer 1, a crash 2, any other local event 3, a duplicated delivery one more."""
        return z3.substitute(self.cost_template, *self._renaming(pre, post, tag))

    def _serialisable(self, sends: dict[tuple[str, int, int], list[tuple[Any, dict[str, Any]]]]) -> list[Any]:
        """The step equals its actions taken in node id order; a ghost's solo events act alone."""
        parts: list[Any] = []
        n = self.n
        for m in self.messages:
            for j in range(n):
                for k in range(j + 1, n):
                    reads = self.acting(k, lambda a, m=m, j=j: a.kind == "deliver" and a.trigger == m and a.src == j)  # type: ignore[misc]
                    parts.append(z3.Implies(reads, z3.Not(to_bool(Or(*[w for w, _ in sends.get((m, j, k), [])])))))
        for k in range(n):
            solo = self.acting(k, lambda a: a.kind == "local" and a.trigger in self.net.ghost.solo)
            others = [self.acting(j, lambda a: a.kind != "idle") for j in range(n) if j != k]
            parts.append(z3.Implies(solo, z3.Not(z3.Or(*others))))
        return parts

    @staticmethod
    def _timer_effects(row: Transition, fired: z3.BoolRef, before: Record, args: Record,
                       timers: dict[str, list[tuple[str, Any]]]) -> None:
        for eff in row.effects:
            if eff.kind in ("start_timer", "cancel_timer"):
                when = True if eff.when is None else eff.when(before, args)
                timers.setdefault(eff.name, []).append((eff.kind, And(fired, when)))

    def _sends(self, k: int, row: Transition, fired: z3.BoolRef, before: Record, args: Record, after: Record,
               sends: dict[tuple[str, int, int], list[tuple[Any, dict[str, Any]]]]) -> None:
        for eff in row.effects:
            if eff.kind != "send":
                continue
            when = True if eff.when is None else eff.when(before, args)
            values = dict((eff.args(before, args, after) if eff.args else None) or {})
            to = values.pop("to")
            missing = set(self.messages[eff.name]) - set(values)
            if missing:
                raise SpecError(f"{self.spec.name}: a {row.trigger} row sends {eff.name} without {sorted(missing)}")
            for d in range(self.n):
                if d != k:
                    sends.setdefault((eff.name, k, d), []).append((And(fired, when, Or(to == d, to == -1)), values))

    def _next_record(self, initial: int, me: Any, me2: Any, updates: list[tuple[Any, Mapping[str, Any], Any]],
                     crashed: z3.BoolRef) -> None:
        self._define(me2.state, self.chain([(c, d) for c, _, d in updates], If(crashed, initial, me.state)))
        for f in self.spec.fields:
            old = me.value(f.name)
            restart = old if f.param or f.name in self.net.durable else f.default
            cases = [(c, ch[f.name]) for c, ch, _ in updates if f.name in ch] + [(crashed, restart)]
            if isinstance(old, tuple):
                for j, item in enumerate(old):
                    self._define(me2.value(f.name)[j], self.chain([(c, v[j]) for c, v in cases], item))
            else:
                self._define(me2.value(f.name), self.chain(cases, old))

    def _define(self, post: Any, value: Any) -> None:
        """``post`` (a variable of the next frame) takes ``value`` (over this frame and the step's choices)."""
        self.defs[str(post)] = (post, to_term(value))

    def _network(self, env: Record, env2: Record,
                 sends: dict[tuple[str, int, int], list[tuple[Any, dict[str, Any]]]]) -> None:
        n = self.n
        for m, names in self.messages.items():
            for s in range(n):
                for d in range(n):
                    i = slot(n, s, d)
                    writes = sends.get((m, s, d), []) if s != d else []
                    delivered = self.acting(d, lambda a, m=m, s=s: (  # type: ignore[misc]
                        a.kind == "deliver" and a.trigger == m and a.src == s))
                    still = And(getattr(env, f"{m}__in")[i], z3.Not(z3.And(delivered, z3.Not(self.keep[d]))))
                    self._define(getattr(env2, f"{m}__in")[i], to_bool(Or(*[w for w, _ in writes], still)))
                    for name in names:
                        value = self.chain([(w, v[name]) for w, v in writes], getattr(env, f"{m}__{name}")[i])
                        self._define(getattr(env2, f"{m}__{name}")[i], value)

    # -- reading runs back ---------------------------------------------------------------
    def decode_step(self, model: z3.ModelRef, pre: Frame, post: Frame, tag: str) -> Step:
        """The actions of one step, in node id order: the first, with the others as its followers."""
        pairs = self._renaming(pre, post, tag)

        def val(term: Any) -> Any:
            return model.eval(z3.substitute(to_term(term), *pairs), model_completion=True)

        steps: list[Step] = []
        for k in range(self.n):
            action = self.actions[k][val(self.act[k]).as_long()]
            if action.kind == "idle":
                continue
            if action.kind == "crash":
                steps.append(Step(NET, "crash", {"node": k}, ENV_STEP))
                continue
            row = val(self.rows[k]).as_long()
            sub = self.step_args[(k, action.trigger)]
            args = {name: val(v).as_long() for name, v in sub.values().items()}
            if action.kind == "deliver" and z3.is_true(val(self.keep[k])):
                args = {**args, "duplicated": 1}
            steps.append(Step(node(k), action.trigger, args, None if row == IGNORED else row))
        if not steps:
            return Step(NET, "idle", {}, ENV_STEP)
        return Step(steps[0].component, steps[0].trigger, steps[0].args, steps[0].row, tuple(steps[1:]))


def base(name: str) -> str:
    """A variable's name without its frame or step tag (``node0.round@x`` -> ``node0.round``)."""
    return name.rsplit("@", 1)[0]


def free_names(term: z3.ExprRef) -> set[str]:
    """The names of the uninterpreted constants in ``term``."""
    out: set[str] = set()
    seen: set[int] = set()
    todo = [term]
    while todo:
        t = todo.pop()
        if t.get_id() in seen:
            continue
        seen.add(t.get_id())
        if z3.is_const(t) and t.decl().kind() == z3.Z3_OP_UNINTERPRETED:
            out.add(t.decl().name())
        else:
            todo.extend(t.children())
    return out


def _weight(a: Action) -> int:
    if a.kind == "idle":
        return 0
    if a.kind == "deliver" or a.trigger.endswith(TIMER_SUFFIX) or a.trigger == "boot":
        return 1
    return 2 if a.kind == "crash" else 3


def network_model(name: str, doc: str, net: NetworkModel, properties: tuple[Property, ...],
                  witnesses: tuple[Property, ...] = (), bound: int = 8) -> Model:
    """The :class:`Model` of a message-level product (its system: ``NetworkSystem(model, net)``)."""
    return Model(name, doc, network_components(net), properties=properties, witnesses=witnesses,
                 table_checks=False, bmc_bound=bound)
