"""One conformance suite, three targets: the in-memory device (SPC mode and tgt_compat mode) and a real
tgtd through libiscsi.  Where tgt deviates from SPC (``wolfpack.hw.memory`` lists the six deviations), the
test states both answers: the SPC one for the in-memory device in SPC mode, tgt's for tgtd and for the
in-memory device in tgt_compat mode, so the two agree with tgtd command for command (differential test).
"""

from __future__ import annotations

import pytest
from conftest import Target, make_target

from wolfpack.hw import scsi
from wolfpack.hw.device import Disk
from wolfpack.hw.errors import IllegalRequest, NotSupported, ReservationConflict, UnitAttention
from wolfpack.hw.scsi import PrOut, PrType
from wolfpack.hw.transport import ResetLevel

A, B = 0xA, 0xB
BLOCK = 512


def raw(disk: Disk, cdb: bytes, data_out: bytes = b"", data_in: int = 0) -> str:
    """One command without the device layer's UA retry: its outcome as text."""
    return disk.transport.execute(cdb, data_out, data_in).describe()


def ua(pair: tuple[int, int]) -> str:
    return f"CHECK CONDITION, sense key 0x6, ASC/ASCQ {pair[0]:02x}/{pair[1]:02x}"


def attentions(disk: Disk) -> list[str]:
    """Drain and return the unit attentions queued for this nexus."""
    seen = []
    while (outcome := raw(disk, scsi.test_unit_ready())).startswith("CHECK CONDITION, sense key 0x6"):
        seen.append(outcome[-5:])
    return seen


def two_registered(target: Target) -> tuple[Disk, Disk, Disk]:
    a, b, x = target.open("a"), target.open("b"), target.open("x")
    a.register_ignore(A)
    b.register_ignore(B)
    return a, b, x


def test_type5_lets_registrants_write_and_everyone_read(target: Target) -> None:
    a, b, x = two_registered(target)
    assert set(x.read_keys().keys) == {A, B}
    a.reserve(A)
    reservation = x.read_reservation()
    assert (reservation.key, reservation.pr_type) == (A, PrType.WRITE_EXCLUSIVE_REGISTRANTS_ONLY)
    with pytest.raises(ReservationConflict):
        b.reserve(B)
    b.write_blocks(0, b"b" * BLOCK)
    with pytest.raises(ReservationConflict):
        x.write_blocks(0, b"x" * BLOCK)
    assert x.read_blocks(0, 1) == b"b" * BLOCK
    a.reserve(A)  # the holder's repeat is GOOD


def test_fencing_removes_the_victims_key_and_takes_its_reservation(target: Target) -> None:
    a, b, _ = two_registered(target)
    a.reserve(A)
    generation = b.read_keys().generation
    assert b.fence(B, A) is (not target.tgt)  # tgt: no PREEMPT AND ABORT, degraded to PREEMPT
    keys = b.read_keys()
    assert keys.keys == (B,) and keys.generation == generation + 1
    assert (b.read_reservation().key, b.read_reservation().pr_type) == (B, 5)
    assert raw(a, scsi.test_unit_ready()) == ua(scsi.RESERVATIONS_PREEMPTED)
    with pytest.raises(ReservationConflict):
        a.write_blocks(0, b"a" * BLOCK)
    with pytest.raises(ReservationConflict):
        a.reserve(A)
    a.register_ignore(A)  # unfencing: registered again, a registrant may write
    a.write_blocks(0, b"a" * BLOCK)


def test_preempt_and_abort_is_refused_only_by_tgt(target: Target) -> None:
    a, b, _ = two_registered(target)
    a.reserve(A)
    if target.tgt:
        with pytest.raises(IllegalRequest) as refused:
            b.preempt(B, A, abort=True)
        assert refused.value.additional == scsi.INVALID_FIELD_IN_CDB
        assert b.read_reservation().key == A
    else:
        b.preempt(B, A, abort=True)
        assert b.read_reservation().key == B


def test_preempting_a_key_nobody_holds_conflicts(target: Target) -> None:
    _, b, _ = two_registered(target)
    with pytest.raises(ReservationConflict):
        b.preempt(B, 0x99)


def test_generation_counts_registrations_not_reservations(target: Target) -> None:
    a, _b, x = two_registered(target)
    start = x.read_keys().generation
    a.reserve(A)
    a.release(A)
    assert x.read_keys().generation == start
    a.register(A, 0xAA)
    assert x.read_keys().generation == start + 1 and set(x.read_keys().keys) == {0xAA, B}


def test_register_needs_the_current_key_and_zero_unregisters(target: Target) -> None:
    a, _, _ = two_registered(target)
    with pytest.raises(ReservationConflict):
        a.register(0x77, 0xA1)
    a.reserve(A)
    a.register(A, 0)  # unregistering the holder ends its reservation
    assert a.read_reservation().key is None and A not in a.read_keys().keys


def test_exclusive_access_blocks_others_reads_but_not_prin(target: Target) -> None:
    a, b, _ = two_registered(target)
    a.reserve(A, PrType.EXCLUSIVE_ACCESS)
    with pytest.raises(ReservationConflict):
        b.read_blocks(0, 1)
    assert b.read_reservation().pr_type == PrType.EXCLUSIVE_ACCESS
    b.preempt(B, A, PrType.EXCLUSIVE_ACCESS)
    assert b.read_reservation().key == B and a.read_keys().keys == (B,)


def test_clear_removes_every_registration_and_tells_the_others(target: Target) -> None:
    a, b, _ = two_registered(target)
    a.reserve(A)
    b.clear(B)
    assert b.read_keys().keys == () and b.read_reservation().key is None
    assert raw(a, scsi.test_unit_ready()) == ua(scsi.RESERVATIONS_PREEMPTED)


def test_release_needs_the_same_type_and_is_a_no_op_from_others(target: Target) -> None:
    a, b, _ = two_registered(target)
    a.reserve(A)
    b.release(B)
    assert a.read_reservation().key == A
    with pytest.raises(IllegalRequest) as refused:
        a.release(A, PrType.WRITE_EXCLUSIVE)
    assert refused.value.additional == scsi.INVALID_RELEASE_OF_PR


def test_releasing_a_registrants_only_reservation_tells_the_other_registrants(target: Target) -> None:
    a, b, x = two_registered(target)
    for d in (a, b, x):
        attentions(d)
    a.reserve(A)
    a.release(A)
    if target.tgt:  # deviation 6: nobody is told
        assert [attentions(d) for d in (a, b, x)] == [[], [], []]
    else:
        assert [attentions(d) for d in (a, b, x)] == [[], ["2a/04"], []]


def test_scsi2_reserve_release_and_the_challenge_by_reset(target: Target) -> None:
    a, b, _ = target.open("a"), target.open("b"), target.open("x")
    a.reserve6()
    a.reserve6()  # renewal
    with pytest.raises(ReservationConflict):
        b.reserve6()
    for command in (scsi.test_unit_ready(), scsi.read10(0, 1), scsi.write10(0, 1)):
        assert raw(b, command, b"\0" * BLOCK if command[0] == scsi.WRITE10 else b"", BLOCK) == "RESERVATION CONFLICT"
    b.release6()  # from a non-holder: GOOD, no effect
    with pytest.raises(ReservationConflict):
        b.reserve6()
    b.reset(ResetLevel.LUN)
    assert raw(a, scsi.test_unit_ready()) == ua(scsi.POWER_ON_OR_RESET)
    assert raw(b, scsi.test_unit_ready()) == ua(scsi.POWER_ON_OR_RESET)  # the resetter is told too
    a.reserve6()  # the defender re-reserves in time: the challenger loses
    with pytest.raises(ReservationConflict):
        b.reserve6()
    b.reset(ResetLevel.LUN)
    b.reserve6()  # the defender was silent: the challenger wins
    with pytest.raises(ReservationConflict):
        a.reserve6()


def test_a_unit_attention_is_reported_once_per_nexus(target: Target) -> None:
    a, b = target.open("a"), target.open("b")
    a.reset()
    assert attentions(a) == ["29/00"] and attentions(b) == ["29/00"] and attentions(a) == []
    b.reset()
    with pytest.raises(UnitAttention):
        Disk(a.transport, ua_retries=0).test_unit_ready()
    a.test_unit_ready()  # the device layer retries past it


def test_nexus_loss_releases_a_scsi2_reservation_but_not_registrations(target: Target) -> None:
    a, b, c = target.open("a"), target.open("b"), target.open("c")
    b.reserve6()
    b.close()
    a.reserve6()  # the logout released b's reservation
    a.release6()
    c.register_ignore(0xC)
    c.close()
    assert a.read_keys().keys == (0xC,)  # registrations outlive their nexus


def test_scsi2_and_persistent_reservations(target: Target) -> None:
    a, b, x = two_registered(target)
    a.reserve(A)
    if target.tgt:  # deviation 2: independent
        x.reserve6()
        assert raw(b, scsi.prout(PrOut.REGISTER_AND_IGNORE), scsi.prout_parameters(0, 0xBB)) == "GOOD"
    else:  # SPC-4 5.7.3
        with pytest.raises(ReservationConflict):
            x.reserve6()
        a.reserve6()  # from the PR holder: GOOD, nothing happens
        b.reserve6()  # from a registrant under a registrants-only reservation: GOOD, nothing happens
        b.write_blocks(0, b"b" * BLOCK)


def test_other_commands_under_another_initiators_scsi2_reservation(target: Target) -> None:
    a, x = target.open("a"), target.open("x")
    a.reserve6()
    mode_sense = bytes([0x1A, 0, 0x3F, 0, 4, 0])
    expected = "GOOD" if target.tgt else "RESERVATION CONFLICT"  # deviations 3 and 2
    assert raw(x, mode_sense, b"", 4) == expected
    assert raw(x, scsi.prin(scsi.PrIn.READ_KEYS, 64), b"", 64) == expected
    assert raw(x, scsi.prout(PrOut.REGISTER_AND_IGNORE), scsi.prout_parameters(0, 0xC)) == expected


def test_only_a_lun_reset_exists_on_tgt(target: Target) -> None:
    a = target.open("a")
    for level in (ResetLevel.TARGET, ResetLevel.BUS):
        if target.tgt:  # deviation 4
            with pytest.raises(NotSupported):
                a.reset(level)
        else:
            a.reset(level)
            assert attentions(a) == ["29/00"]


def test_aptpl(target: Target) -> None:
    a = target.open("a")
    outcome = raw(a, scsi.prout(PrOut.REGISTER_AND_IGNORE), scsi.prout_parameters(0, A, aptpl=True))
    if target.tgt:  # deviation 5 (tgt answers 24/00 where SPC would use 26/00)
        assert outcome == "CHECK CONDITION, sense key 0x5, ASC/ASCQ 24/00"
        return
    assert outcome == "GOOD"
    unit = target.memory
    assert unit is not None
    unit.fail()
    unit.repair()
    assert attentions(a) == ["29/00"] and a.read_keys().keys == (A,)


@pytest.mark.parametrize("kind", ["spc", "tgt_compat"])
def test_a_power_cycle_without_aptpl_loses_every_registration(kind: str, request: pytest.FixtureRequest) -> None:
    """In memory only: restarting the session's tgtd would cut the other tests' LUNs (that tgt keeps nothing
    is its PTPL_C = 0, checked by test_report_capabilities)."""
    target = make_target(kind, request)
    unit = target.memory
    assert unit is not None
    a, b, _ = two_registered(target)
    a.reserve(A)
    unit.fail()
    assert a.transport.execute(scsi.test_unit_ready()).status is None
    unit.repair()
    assert attentions(b) == ["29/00"] and b.read_keys().keys == () and b.read_reservation().key is None


def test_report_capabilities(target: Target) -> None:
    a = target.open("a")
    data = a.command("REPORT CAPABILITIES", scsi.prin(scsi.PrIn.REPORT_CAPABILITIES, 8), b"", 8).data
    assert data[:2] == b"\x00\x08" and data[4:6] == b"\xea\x01"
    assert data[2] & 1 == (0 if target.tgt else 1)  # PTPL_C


def test_blocks_round_trip_and_out_of_range(target: Target) -> None:
    a = target.open("a")
    blocks, size = a.capacity()
    assert (blocks, size) == (131_072, 512)
    payload = bytes(range(256)) * 4
    a.write_blocks(7, payload)
    assert a.read_blocks(7, 2) == payload
    assert raw(a, scsi.read10(blocks, 1), b"", size) == "CHECK CONDITION, sense key 0x5, ASC/ASCQ 21/00"
    with pytest.raises(ValueError, match="whole blocks"):
        a.write_blocks(0, b"short")
