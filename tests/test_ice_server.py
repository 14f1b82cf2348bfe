"""The sans-IO ICE-lite server (``worker/ice_server.py``) on a fake clock.

Requests are built by the pure-Python STUN reference (``tests/reference/stun.py``, through
``tests/ice_client.binding_request``) and parsed by the worker's C parser; every response the
server produces is parsed and checked back with the reference (class, transaction id,
ERROR-CODE, XOR-MAPPED-ADDRESS, MESSAGE-INTEGRITY, FINGERPRINT), so the bytes on the wire are
checked independently of the code that made them. ``now`` is a float chosen by each test.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.ice_client import IceCredentials, binding_request
from tests.reference import stun as ref
from worker._fast import parse_stun
from worker.ice_server import MAX_TUPLES, IceServer, IceTuple, IceUpdate

UFRAG = "srvUfrag0001"
PASSWORD = "srvPassword-0123456789ab"
CREDS = IceCredentials(UFRAG, PASSWORD, "peerUfrag")
CONSENT_S = 30.0
T0 = 1000.0  # the fake clock starts somewhere that is not zero


def udp_tuple(port: int, remote_ip: str = "127.0.0.1", local_ip: str = "127.0.0.1",
              local_port: int = 40000) -> IceTuple:
    return IceTuple("udp", local_ip, local_port, remote_ip, port)


def new_server(consent_s: float = CONSENT_S) -> IceServer:
    return IceServer(UFRAG, PASSWORD, consent_s)


def feed(server: IceServer, data: bytes, tup: IceTuple, now: float) -> IceUpdate:
    return server.handle_stun(data, parse_stun(data), tup, now)


def request(server: IceServer, tup: IceTuple, now: float, creds: IceCredentials = CREDS,
            **options: Any) -> tuple[bytes, IceUpdate]:
    """A binding request as a controlling agent sends it; returns (transaction id, update)."""
    tid, data = binding_request(creds, **options)
    return tid, feed(server, data, tup, now)


def custom_request(attributes: dict[int, Any], *, key: bytes | None = PASSWORD.encode(),
                   method: int = ref.METHOD_BINDING,
                   klass: ref.StunClass = ref.StunClass.REQUEST,
                   fingerprint: bool = True) -> tuple[bytes, bytes]:
    tid = os.urandom(12)
    message = ref.StunMessage(method, klass, tid, attributes)
    return tid, message.build(integrity_key=key, fingerprint=fingerprint)


def full_attributes(creds: IceCredentials = CREDS) -> dict[int, Any]:
    return {ref.USERNAME: f"{creds.local_ufrag}:{creds.remote_ufrag}".encode(),
            ref.PRIORITY: 1853817087, ref.ICE_CONTROLLING: 0x0102030405060708}


def parsed_response(data: bytes | None, tid: bytes) -> ref.StunMessage:
    assert data is not None, "the server answered nothing"
    message = ref.parse_message(data)
    assert message.method == ref.METHOD_BINDING
    assert message.transaction_id == tid
    assert message.fingerprint_valid is True, "FINGERPRINT of the response is wrong"
    return message


def check_success(update: IceUpdate, tid: bytes, tup: IceTuple,
                  password: str = PASSWORD) -> None:
    message = parsed_response(update.response, tid)
    assert update.rejected == 0
    assert message.message_class is ref.StunClass.SUCCESS
    assert message.attributes[ref.XOR_MAPPED_ADDRESS] == (tup.remote_ip, tup.remote_port)
    assert update.response is not None
    assert ref.check_message_integrity(update.response, message, password.encode())
    assert ref.ERROR_CODE not in message.attributes


def check_error(update: IceUpdate, tid: bytes, code: int,
                password: str | None = None) -> ref.StunMessage:
    message = parsed_response(update.response, tid)
    assert update.rejected == code
    assert message.message_class is ref.StunClass.ERROR
    assert message.attributes[ref.ERROR_CODE].code == code
    assert ref.XOR_MAPPED_ADDRESS not in message.attributes
    assert update.added is None and not update.removed
    assert not update.state_changed and not update.selected_changed
    if password is None:
        assert ref.MESSAGE_INTEGRITY not in message.attributes
    else:
        assert update.response is not None
        assert ref.check_message_integrity(update.response, message, password.encode())
    return message


def deadline_of(server: IceServer) -> float | None:
    return server.deadline


def snapshot(server: IceServer) -> tuple[Any, ...]:
    return (server.state, list(server.tuples), server.selected, server.deadline,
            server.ufrag, server.password, server.old_ufrag)


# ---- success responses ---------------------------------------------------------------------


@pytest.mark.parametrize(("remote_ip", "local_ip"), [("127.0.0.1", "127.0.0.1"),
                                                     ("192.0.2.77", "127.0.0.1"),
                                                     ("::1", "::1"),
                                                     ("2001:db8::5", "::1")])
def test_success_response_content(remote_ip: str, local_ip: str) -> None:
    server = new_server()
    tup = udp_tuple(51234, remote_ip=remote_ip, local_ip=local_ip)
    tid, update = request(server, tup, T0)
    check_success(update, tid, tup)
    # The C parser reads it the same way.
    assert update.response is not None
    view = parse_stun(update.response)
    assert view.xor_mapped_address == (remote_ip, 51234)
    assert view.fingerprint_valid
    assert update.added is tup
    assert server.tuples == [tup]


def test_success_over_tcp_tuple_keeps_its_connection() -> None:
    server = new_server()
    marker = object()
    tup = IceTuple("tcp", "127.0.0.1", 40001, "127.0.0.1", 50001, connection=marker)
    tid, update = request(server, tup, T0)
    check_success(update, tid, tup)
    assert server.selected is tup and server.selected.connection is marker
    assert tup.dump() == {"localAddress": "127.0.0.1", "localPort": 40001,
                          "remoteIp": "127.0.0.1", "remotePort": 50001, "protocol": "tcp"}


def test_udp_and_tcp_tuples_with_the_same_addresses_are_distinct() -> None:
    server = new_server()
    udp = IceTuple("udp", "127.0.0.1", 40000, "127.0.0.1", 50000)
    tcp = IceTuple("tcp", "127.0.0.1", 40000, "127.0.0.1", 50000)
    request(server, udp, T0)
    _, update = request(server, tcp, T0)
    assert update.added is tcp
    assert server.tuples == [udp, tcp]
    assert server.find_tuple(tcp.key) is tcp
    assert server.find_tuple(udp.key) is udp
    assert server.find_tuple(("udp", "127.0.0.1", 40000, "127.0.0.1", 1)) is None


def test_a_known_tuple_is_not_added_twice() -> None:
    server = new_server()
    first = udp_tuple(5000)
    request(server, first, T0)
    same = udp_tuple(5000)  # another object with the same 5-tuple
    tid, update = request(server, same, T0 + 1)
    check_success(update, tid, same)
    assert update.added is None and not update.removed
    assert server.tuples == [first]
    assert server.tuples[0] is first


# ---- 400 ------------------------------------------------------------------------------------


@pytest.mark.parametrize("missing", [ref.PRIORITY, ref.USERNAME])
def test_400_for_a_missing_attribute(missing: int) -> None:
    server = new_server()
    attributes = full_attributes()
    del attributes[missing]
    tid, data = custom_request(attributes)
    before = snapshot(server)
    update = feed(server, data, udp_tuple(5000), T0)
    check_error(update, tid, 400)
    assert snapshot(server) == before
    assert server.requests_rejected == 1


def test_400_for_a_missing_message_integrity() -> None:
    server = new_server()
    tid, data = custom_request(full_attributes(), key=None)
    update = feed(server, data, udp_tuple(5000), T0)
    check_error(update, tid, 400)
    assert server.state == "new" and not server.tuples


@pytest.mark.parametrize("method", [0x002, 0x003, 0x004, 0x009])
def test_400_for_a_request_that_is_not_binding(method: int) -> None:
    server = new_server()
    tid, data = custom_request(full_attributes(), method=method)
    update = feed(server, data, udp_tuple(5000), T0)
    message = ref.parse_message(update.response or b"")
    # (RFC 5389 7.3.1 wants the request's method in the error response; the worker answers
    # with Binding's, see the report: only the transaction id is checked here.)
    assert message.transaction_id == tid
    assert message.message_class is ref.StunClass.ERROR
    assert message.fingerprint_valid is True
    assert message.attributes[ref.ERROR_CODE].code == 400
    assert update.rejected == 400
    assert server.state == "new" and not server.tuples


def test_errors_leave_an_established_session_unchanged() -> None:
    server = new_server()
    first = udp_tuple(5000)
    request(server, first, T0, use_candidate=True)
    before = snapshot(server)
    stranger = udp_tuple(6000)
    attributes = full_attributes()
    del attributes[ref.PRIORITY]
    tid, data = custom_request(attributes)
    check_error(feed(server, data, stranger, T0 + 10), tid, 400)
    tid, update = request(server, stranger, T0 + 11, password="wrong-password-0123456789")
    check_error(update, tid, 401)
    tid, update = request(server, stranger, T0 + 12, controlled=True)
    check_error(update, tid, 487, PASSWORD)
    # No tuple added, nothing selected, and the consent deadline was not restarted.
    assert snapshot(server) == before
    assert server.deadline == T0 + CONSENT_S
    assert server.requests_rejected == 3


# ---- 401 ------------------------------------------------------------------------------------


@pytest.mark.parametrize("username", [b"otherUfrag:peer", b"srvUfrag000:peer", b"srvUfrag0001",
                                      b":srvUfrag0001", b"srvUfrag00011:peer",
                                      b"SRVUFRAG0001:peer"])
def test_401_for_a_wrong_username(username: bytes) -> None:
    server = new_server()
    attributes = full_attributes()
    attributes[ref.USERNAME] = username
    tid, data = custom_request(attributes)
    update = feed(server, data, udp_tuple(5000), T0)
    check_error(update, tid, 401)
    assert server.state == "new" and not server.tuples and server.deadline is None


def test_401_for_a_wrong_message_integrity() -> None:
    server = new_server()
    tid, update = request(server, udp_tuple(5000), T0, password=PASSWORD + "x")
    check_error(update, tid, 401)
    assert server.state == "new" and not server.tuples and server.selected is None


def test_401_for_a_message_integrity_tampered_after_signing() -> None:
    server = new_server()
    tid, data = binding_request(CREDS)
    message = ref.parse_message(data)
    assert message.integrity_offset is not None
    tampered = bytearray(data)
    tampered[message.integrity_offset + 4] ^= 0x01  # first HMAC byte
    # Recompute FINGERPRINT so that only MESSAGE-INTEGRITY is wrong.
    fp_offset = len(tampered) - 8
    tampered[fp_offset + 4:] = ref.fingerprint_of(bytes(tampered[:fp_offset])).to_bytes(4, "big")
    assert parse_stun(bytes(tampered)).fingerprint_valid
    update = feed(server, bytes(tampered), udp_tuple(5000), T0)
    check_error(update, tid, 401)
    assert not server.tuples


# ---- 487 ------------------------------------------------------------------------------------


def test_487_for_ice_controlled() -> None:
    server = new_server()
    tid, update = request(server, udp_tuple(5000), T0, controlled=True, use_candidate=True)
    check_error(update, tid, 487, PASSWORD)
    assert server.state == "new" and not server.tuples and server.deadline is None


def test_authentication_is_checked_before_the_role() -> None:
    server = new_server()
    tid, update = request(server, udp_tuple(5000), T0, controlled=True,
                          password="not-the-password-at-all")
    check_error(update, tid, 401)


# ---- messages that get no answer -----------------------------------------------------------


@pytest.mark.parametrize("klass", [ref.StunClass.INDICATION, ref.StunClass.SUCCESS,
                                   ref.StunClass.ERROR])
def test_indications_and_responses_are_ignored(klass: ref.StunClass) -> None:
    server = new_server()
    request(server, udp_tuple(5000), T0)
    before = snapshot(server)
    attributes = full_attributes()
    if klass is ref.StunClass.ERROR:
        attributes[ref.ERROR_CODE] = ref.ErrorCode(400, b"Bad Request")
    if klass is ref.StunClass.SUCCESS:
        attributes[ref.XOR_MAPPED_ADDRESS] = ("127.0.0.1", 5000)
    for method in (ref.METHOD_BINDING, 0x003):
        _, data = custom_request(attributes, method=method, klass=klass)
        update = feed(server, data, udp_tuple(7000), T0 + 5)
        assert update == IceUpdate()
    assert snapshot(server) == before
    assert server.requests_rejected == 0


def test_a_request_with_a_wrong_fingerprint_is_ignored() -> None:
    server = new_server()
    _, data = binding_request(CREDS, use_candidate=True)
    broken = bytearray(data)
    broken[-1] ^= 0xFF
    msg = parse_stun(bytes(broken))
    assert msg.fingerprint_present and not msg.fingerprint_valid
    assert server.handle_stun(bytes(broken), msg, udp_tuple(5000), T0) == IceUpdate()
    assert server.state == "new" and not server.tuples and server.requests_rejected == 0


def test_a_request_whose_body_changed_after_the_fingerprint_is_ignored() -> None:
    server = new_server()
    _, data = binding_request(CREDS, priority=0x11223344)
    broken = data.replace((0x11223344).to_bytes(4, "big"), (0x11223345).to_bytes(4, "big"))
    assert broken != data
    assert feed(server, broken, udp_tuple(5000), T0) == IceUpdate()
    assert not server.tuples


def test_a_binding_request_without_fingerprint_gets_400() -> None:
    """mediasoup's rule: FINGERPRINT is required (a wrong one is dropped, see above)."""
    server = new_server()
    _, data = custom_request(full_attributes(), fingerprint=False)
    update = feed(server, data, udp_tuple(5000), T0)
    assert update.rejected == 400 and update.response is not None
    assert server.state == "new" and not server.tuples and server.requests_rejected == 1


# ---- states and selection ------------------------------------------------------------------


def test_new_to_connected_without_nomination() -> None:
    server = new_server()
    tup = udp_tuple(5000)
    tid, update = request(server, tup, T0)
    check_success(update, tid, tup)
    assert update.state_changed and update.selected_changed and update.added is tup
    assert server.state == "connected" and server.selected is tup
    assert server.deadline == T0 + CONSENT_S
    # The same request again changes nothing but the deadline.
    _, update = request(server, tup, T0 + 3)
    assert not update.state_changed and not update.selected_changed and update.added is None
    assert server.state == "connected" and server.deadline == T0 + 3 + CONSENT_S


def test_new_to_completed_on_use_candidate() -> None:
    server = new_server()
    tup = udp_tuple(5000)
    tid, update = request(server, tup, T0, use_candidate=True)
    check_success(update, tid, tup)
    assert update.state_changed and update.selected_changed
    assert server.state == "completed" and server.selected is tup


def test_new_to_completed_on_nomination() -> None:
    server = new_server()
    tup = udp_tuple(5000)
    _, update = request(server, tup, T0, nomination=1)
    assert update.state_changed and server.state == "completed" and server.selected is tup


def test_connected_to_completed() -> None:
    server = new_server()
    first, second = udp_tuple(5000), udp_tuple(5001)
    request(server, first, T0)
    # A second valid tuple without nomination is only added.
    _, update = request(server, second, T0 + 1)
    assert update.added is second and not update.selected_changed and not update.state_changed
    assert server.state == "connected" and server.selected is first
    # USE-CANDIDATE on it selects it and completes.
    tid, update = request(server, second, T0 + 2, use_candidate=True)
    check_success(update, tid, second)
    assert update.state_changed and update.selected_changed and update.added is None
    assert server.state == "completed" and server.selected is second
    assert server.tuples == [first, second]


def test_use_candidate_on_the_selected_tuple_completes_without_selection_change() -> None:
    server = new_server()
    tup = udp_tuple(5000)
    request(server, tup, T0)
    _, update = request(server, tup, T0 + 1, use_candidate=True)
    assert update.state_changed and not update.selected_changed
    assert server.state == "completed"


def test_use_candidate_in_completed_moves_the_selection() -> None:
    server = new_server()
    first, second = udp_tuple(5000), udp_tuple(5001)
    request(server, first, T0, use_candidate=True)
    _, update = request(server, second, T0 + 1)
    assert update.added is second and not update.selected_changed
    assert server.selected is first
    _, update = request(server, second, T0 + 2, use_candidate=True)
    assert update.selected_changed and not update.state_changed
    assert server.selected is second and server.state == "completed"


def test_nomination_renewal() -> None:
    server = new_server()
    a, b = udp_tuple(5000), udp_tuple(5001)
    _, update = request(server, a, T0, nomination=1)
    assert server.state == "completed" and server.selected is a
    # A higher value on another tuple selects it.
    _, update = request(server, b, T0 + 1, nomination=2)
    assert update.selected_changed and server.selected is b
    # A lower value, or the same value, does not move the selection back.
    for value in (1, 2):
        tid, update = request(server, a, T0 + 2, nomination=value)
        check_success(update, tid, a)
        assert not update.selected_changed and server.selected is b
    # No NOMINATION at all does not either.
    _, update = request(server, a, T0 + 3)
    assert not update.selected_changed and server.selected is b
    # A higher one does.
    _, update = request(server, a, T0 + 4, nomination=7)
    assert update.selected_changed and not update.state_changed
    assert server.selected is a and server.state == "completed"
    _, update = request(server, b, T0 + 5, nomination=3)
    assert not update.selected_changed and server.selected is a


def test_nomination_in_connected_completes() -> None:
    server = new_server()
    a, b = udp_tuple(5000), udp_tuple(5001)
    request(server, a, T0)
    request(server, b, T0)
    assert server.state == "connected" and server.selected is a
    _, update = request(server, b, T0 + 1, nomination=1)
    assert update.state_changed and update.selected_changed
    assert server.state == "completed" and server.selected is b


# ---- tuple cap -----------------------------------------------------------------------------


def test_tuples_are_capped_and_the_oldest_unselected_is_evicted() -> None:
    server = new_server()
    tuples = [udp_tuple(6000 + i) for i in range(MAX_TUPLES)]
    for i, tup in enumerate(tuples):
        _, update = request(server, tup, T0 + i)
        assert update.added is tup and not update.removed
    assert server.tuples == tuples and server.selected is tuples[0]
    newcomer = udp_tuple(7000)
    tid, update = request(server, newcomer, T0 + 10)
    check_success(update, tid, newcomer)
    assert update.added is newcomer
    assert update.removed == [tuples[1]]  # tuples[0] is selected, so tuples[1] is the oldest
    assert server.tuples == [tuples[0], *tuples[2:], newcomer]
    assert len(server.tuples) == MAX_TUPLES
    assert server.selected is tuples[0]


def test_the_selected_tuple_is_never_evicted() -> None:
    server = new_server()
    tuples = [udp_tuple(6000 + i) for i in range(MAX_TUPLES)]
    for tup in tuples:
        request(server, tup, T0)
    chosen = tuples[3]
    request(server, chosen, T0 + 1, use_candidate=True)
    assert server.selected is chosen
    evicted: list[IceTuple] = []
    for i in range(3 * MAX_TUPLES):
        _, update = request(server, udp_tuple(8000 + i), T0 + 2 + i)
        assert len(update.removed) == 1
        assert update.removed[0] is not chosen
        evicted.extend(update.removed)
        assert len(server.tuples) == MAX_TUPLES
        assert chosen in server.tuples and server.selected is chosen
    # Eviction went oldest first: the first 7 evicted are the original unselected tuples, in order.
    assert evicted[:MAX_TUPLES - 1] == [t for t in tuples if t is not chosen]
    assert len({id(t) for t in evicted}) == len(evicted)


def test_a_refreshed_tuple_keeps_its_age() -> None:
    """Age is the order the tuples were added in; a new request on a tuple does not renew it."""
    server = new_server()
    tuples = [udp_tuple(6000 + i) for i in range(MAX_TUPLES)]
    for tup in tuples:
        request(server, tup, T0)
    request(server, tuples[1], T0 + 1)  # refreshed, still the oldest unselected
    _, update = request(server, udp_tuple(7000), T0 + 2)
    assert update.removed == [tuples[1]]


# ---- consent -------------------------------------------------------------------------------


def test_consent_deadline_is_restarted_by_each_valid_request() -> None:
    server = new_server()
    a, b = udp_tuple(5000), udp_tuple(5001)
    request(server, a, T0)
    assert server.deadline == T0 + CONSENT_S
    assert server.handle_timeout(T0 + CONSENT_S - 0.001) == IceUpdate()
    request(server, b, T0 + 20)  # on any tuple
    assert server.deadline == T0 + 20 + CONSENT_S
    assert server.handle_timeout(T0 + CONSENT_S + 1) == IceUpdate()
    assert server.state == "connected" and server.tuples == [a, b]
    update = server.handle_timeout(T0 + 20 + CONSENT_S)
    assert update.removed == [a, b]
    assert update.state_changed and update.selected_changed
    assert server.state == "disconnected" and server.selected is None and not server.tuples
    assert deadline_of(server) is None  # (through a call: mypy narrowed it above)
    # Nothing more to do, however late.
    assert server.handle_timeout(T0 + 10_000) == IceUpdate()


def test_consent_expiry_from_completed_then_reconnect() -> None:
    server = new_server(consent_s=10.0)
    a = udp_tuple(5000)
    request(server, a, T0, use_candidate=True)
    update = server.handle_timeout(T0 + 10.0)
    assert update.removed == [a] and server.state == "disconnected"
    # disconnected -> connected on the next valid request; the tuple comes back as a new one.
    b = udp_tuple(5000)
    tid, update = request(server, b, T0 + 11)
    check_success(update, tid, b)
    assert update.added is b and update.state_changed and update.selected_changed
    assert server.state == "connected" and server.selected is b
    assert server.deadline == T0 + 21
    # disconnected -> completed directly with USE-CANDIDATE.
    server.handle_timeout(T0 + 21)
    _, update = request(server, b, T0 + 22, use_candidate=True)
    assert server.state == "completed"


def test_consent_zero_never_expires() -> None:
    server = new_server(consent_s=0)
    a = udp_tuple(5000)
    request(server, a, T0, use_candidate=True)
    assert server.deadline is None
    for late in (T0 + 30, T0 + 60, T0 + 1e9):
        assert server.handle_timeout(late) == IceUpdate()
    assert server.state == "completed" and server.tuples == [a]
    server.restart("ufragAfter", "passwordAfter-0123456789", T0 + 100)
    assert server.deadline is None


def test_timeout_before_any_request_does_nothing() -> None:
    server = new_server()
    assert server.deadline is None
    assert server.handle_timeout(T0 + 1e6) == IceUpdate()
    assert server.state == "new"


# ---- ICE restart ---------------------------------------------------------------------------

NEW_UFRAG = "newUfrag0002"
NEW_PASSWORD = "newPassword-abcdef012345"
NEW_CREDS = IceCredentials(NEW_UFRAG, NEW_PASSWORD, "peerUfrag")


def test_ice_restart_keeps_old_credentials_until_the_new_ones_are_used() -> None:
    server = new_server()
    a = udp_tuple(5000)
    request(server, a, T0, use_candidate=True)
    server.restart(NEW_UFRAG, NEW_PASSWORD, T0 + 5)
    assert (server.ufrag, server.password, server.old_ufrag) == (NEW_UFRAG, NEW_PASSWORD, UFRAG)
    assert server.deadline == T0 + 5 + CONSENT_S  # restarted with the credentials
    # The old credentials still work, and the answer is signed with the old password.
    for i in range(2):
        tid, update = request(server, a, T0 + 6 + i)
        check_success(update, tid, a, password=PASSWORD)
        assert server.old_ufrag == UFRAG
    # The new ones work and are signed with the new password ...
    tid, update = request(server, a, T0 + 10, creds=NEW_CREDS)
    check_success(update, tid, a, password=NEW_PASSWORD)
    assert server.old_ufrag is None
    # ... and from then on the old ones are refused, changing nothing.
    before = snapshot(server)
    tid, update = request(server, a, T0 + 11)
    check_error(update, tid, 401)
    tid, update = request(server, udp_tuple(5001), T0 + 12)
    check_error(update, tid, 401)
    assert snapshot(server) == before
    assert server.state == "completed" and server.tuples == [a]


def test_old_ufrag_with_the_new_password_is_refused() -> None:
    server = new_server()
    request(server, udp_tuple(5000), T0)
    server.restart(NEW_UFRAG, NEW_PASSWORD, T0 + 1)
    mixed = IceCredentials(UFRAG, NEW_PASSWORD, "peerUfrag")
    tid, update = request(server, udp_tuple(5000), T0 + 2, creds=mixed)
    check_error(update, tid, 401)
    mixed = IceCredentials(NEW_UFRAG, PASSWORD, "peerUfrag")
    tid, update = request(server, udp_tuple(5000), T0 + 3, creds=mixed)
    check_error(update, tid, 401)
    assert server.old_ufrag == UFRAG  # refused requests retire nothing


def test_two_restarts_keep_only_the_previous_credentials() -> None:
    server = new_server()
    request(server, udp_tuple(5000), T0)
    server.restart(NEW_UFRAG, NEW_PASSWORD, T0 + 1)
    third = IceCredentials("thirdUfrag03", "thirdPassword-0123456789", "peerUfrag")
    server.restart(third.local_ufrag, third.password, T0 + 2)
    assert server.old_ufrag == NEW_UFRAG
    tid, update = request(server, udp_tuple(5000), T0 + 3)
    check_error(update, tid, 401)
    tid, update = request(server, udp_tuple(5000), T0 + 4, creds=NEW_CREDS)
    check_success(update, tid, udp_tuple(5000), password=NEW_PASSWORD)
    tid, update = request(server, udp_tuple(5000), T0 + 5, creds=third)
    check_success(update, tid, udp_tuple(5000), password=third.password)
    tid, update = request(server, udp_tuple(5000), T0 + 6, creds=NEW_CREDS)
    check_error(update, tid, 401)


def test_restart_before_any_tuple_sets_no_deadline() -> None:
    server = new_server()
    server.restart(NEW_UFRAG, NEW_PASSWORD, T0)
    assert server.deadline is None
    tid, update = request(server, udp_tuple(5000), T0 + 1, creds=NEW_CREDS)
    check_success(update, tid, udp_tuple(5000), password=NEW_PASSWORD)
    assert server.state == "connected"


# ---- remove_tuple, force_select, close -----------------------------------------------------


def test_remove_the_selected_tuple_selects_another() -> None:
    server = new_server()
    a, b, c = udp_tuple(5000), udp_tuple(5001), udp_tuple(5002)
    for tup in (a, b, c):
        request(server, tup, T0)
    request(server, a, T0 + 1, use_candidate=True)
    update = server.remove_tuple(a)
    assert update.removed == [a] and update.selected_changed and not update.state_changed
    assert server.selected in (b, c) and server.selected in server.tuples
    assert server.tuples == [b, c] and server.state == "completed"
    assert server.deadline == T0 + 1 + CONSENT_S


def test_remove_an_unselected_tuple() -> None:
    server = new_server()
    a, b = udp_tuple(5000), udp_tuple(5001)
    request(server, a, T0)
    request(server, b, T0)
    update = server.remove_tuple(b)
    assert update.removed == [b] and not update.selected_changed and not update.state_changed
    assert server.tuples == [a] and server.selected is a and server.state == "connected"


def test_remove_the_last_tuple_disconnects() -> None:
    server = new_server()
    a = udp_tuple(5000)
    request(server, a, T0, use_candidate=True)
    update = server.remove_tuple(a)
    assert update.removed == [a] and update.selected_changed and update.state_changed
    assert server.state == "disconnected" and server.selected is None and not server.tuples
    assert server.deadline is None
    assert server.handle_timeout(T0 + 1e6) == IceUpdate()


def test_remove_an_unknown_tuple_does_nothing() -> None:
    server = new_server()
    a = udp_tuple(5000)
    request(server, a, T0)
    assert server.remove_tuple(udp_tuple(5000)) == IceUpdate()  # same key, not the stored one
    assert server.remove_tuple(udp_tuple(9999)) == IceUpdate()
    assert server.tuples == [a]


def test_force_select() -> None:
    server = new_server()
    a, b = udp_tuple(5000), udp_tuple(5001)
    request(server, a, T0)
    request(server, b, T0)
    assert server.selected is a
    update = server.force_select(b)
    assert update.selected_changed and not update.state_changed
    assert server.selected is b and server.state == "connected"
    assert not server.force_select(b).selected_changed  # already selected
    # A tuple that never passed MESSAGE-INTEGRITY cannot be selected.
    stranger = udp_tuple(6000)
    assert server.force_select(stranger) == IceUpdate()
    assert server.selected is b and stranger not in server.tuples


def test_force_select_before_connection_does_nothing() -> None:
    server = new_server()
    assert server.force_select(udp_tuple(5000)) == IceUpdate()
    assert server.selected is None and server.state == "new"
    a = udp_tuple(5000)
    request(server, a, T0)
    server.handle_timeout(T0 + CONSENT_S)
    assert server.force_select(a) == IceUpdate()
    assert server.state == "disconnected" and server.selected is None


def test_close_returns_every_tuple() -> None:
    server = new_server()
    tuples = [udp_tuple(5000 + i) for i in range(4)]
    for tup in tuples:
        request(server, tup, T0)
    removed = server.close()
    assert removed == tuples
    assert not server.tuples and server.selected is None and server.deadline is None
    assert server.close() == []
    assert server.handle_timeout(T0 + 1e6) == IceUpdate()


# ---- random sequences ----------------------------------------------------------------------

_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("request"), st.integers(0, 11), st.sampled_from(
            ["good", "good", "good", "wrong_password", "wrong_ufrag", "controlled", "new"]),
            st.booleans(), st.none() | st.integers(0, 6)),
        st.tuples(st.just("advance"), st.floats(0, 40)),
        st.tuples(st.just("remove"), st.integers(0, 11)),
        st.tuples(st.just("force"), st.integers(0, 11)),
        st.tuples(st.just("restart")),
    ),
    max_size=40,
)


@given(ops=_OPS, consent=st.sampled_from([0.0, 10.0, 30.0]))
def test_random_sequences_keep_the_invariants(ops: list[tuple[Any, ...]],
                                              consent: float) -> None:
    server = IceServer(UFRAG, PASSWORD, consent)
    now = T0
    accepted: set[int] = set()  # ids of tuple objects that got a success response
    current = CREDS
    restarted = 0
    pool = [udp_tuple(5000 + i) for i in range(12)]
    for op in ops:
        kind = op[0]
        if kind == "request":
            _, index, how, use_candidate, nomination = op
            tup = pool[index]
            creds = current
            password = None
            if how == "wrong_password":
                password = "x" + current.password
            elif how == "wrong_ufrag":
                creds = IceCredentials("nobody", current.password, "peer")
            elif how == "new":
                creds = current = IceCredentials(f"ufrag{restarted}", f"pwd{restarted:020d}",
                                                 "peer")
                restarted += 1
                server.restart(creds.local_ufrag, creds.password, now)
            tid, update = request(server, tup, now, creds=creds, password=password,
                                  controlled=how == "controlled", use_candidate=use_candidate,
                                  nomination=nomination)
            message = parsed_response(update.response, tid)
            if how in ("good", "new"):
                assert message.message_class is ref.StunClass.SUCCESS
                assert message.attributes[ref.XOR_MAPPED_ADDRESS] == ("127.0.0.1", tup.remote_port)
                stored = server.find_tuple(tup.key)
                assert stored is not None
                accepted.add(id(stored))
                if use_candidate:
                    assert server.selected is stored and server.state == "completed"
            else:
                assert message.message_class is ref.StunClass.ERROR
                assert update.added is None and not update.removed
        elif kind == "advance":
            now += op[1]
            update = server.handle_timeout(now)
            if update.removed:
                assert server.state == "disconnected"
        elif kind == "remove":
            stored = server.find_tuple(pool[op[1]].key)
            if stored is not None:
                assert server.remove_tuple(stored).removed == [stored]
        elif kind == "force":
            stored = server.find_tuple(pool[op[1]].key)
            if stored is not None:
                server.force_select(stored)
                assert server.selected is stored
        else:
            new = IceCredentials(f"ufrag{restarted}", f"pwd{restarted:020d}", "peer")
            restarted += 1
            server.restart(new.local_ufrag, new.password, now)
            current = new
        # Invariants after every input.
        assert len(server.tuples) <= MAX_TUPLES
        assert len({t.key for t in server.tuples}) == len(server.tuples)
        assert all(id(t) in accepted for t in server.tuples)
        if server.tuples:
            assert server.selected in server.tuples
            assert server.state in ("connected", "completed")
            if consent > 0:
                assert server.deadline is not None and server.deadline > now
        else:
            assert server.selected is None
            assert server.state in ("new", "disconnected")
            assert server.deadline is None
        if consent == 0:
            assert server.deadline is None
