"""What a person reads when the device says no, or accepts something odd, from a client process
(the device is a server process): End without a scan added by number says the sequence was ended
DONE anyway; a channel the sequence did not declare says to list it in Start; a list given to
Start is refused rather than taken as a title; a pending number far beyond the container's counter
is named in the Status; SequenceState reads as a state with its name, as its enum labels say.
The refusal's reason and message are the first error of the DevFailed (pytango 10 appends its own
``PyDs_UnexpectedFailure`` layer to every exception a Python command raises)."""

from __future__ import annotations

import pytest
import tango
from tango_checks import refused

from tango_groups.scanning.simulation import loopscan


def test_end_without_a_pending_scan_says_the_sequence_ended_done(device) -> None:
    proxy = device.proxy
    db_name = proxy.Start("")
    assert proxy.AddScan("7") == "pending:7"
    with pytest.raises(tango.DevFailed) as failure:
        proxy.End()
    first = failure.value.args[0]
    assert first.reason == "SequenceManager_ScansNotFinished"
    assert first.desc == (f"sequence {db_name} ended DONE without scans [7]: they did not start "
                          "within EndTimeout (1 s); add them to another sequence once they run, "
                          "or raise EndTimeout")
    state = proxy.SequenceState
    assert (state.name, int(state)) == ("DONE", 4)  # the label, as the attribute config lists
    assert proxy.get_attribute_config("SequenceState").enum_labels[4] == "DONE"


def test_a_channel_the_sequence_did_not_declare_says_how_to_declare_it(device) -> None:
    proxy = device.proxy
    proxy.Start("no channels")
    desc = refused("SequenceManager_UnknownChannel", lambda: proxy.EmitChannel(([1.0], ["sum"])))
    assert "has no channel 'sum' (its channels: none)" in desc
    assert """Start('{"channels": ["sum"]}')""" in desc
    proxy.End()


def test_start_refuses_a_list_and_names_what_channels_take(device) -> None:
    proxy = device.proxy
    desc = refused("SequenceManager_BadRequest", lambda: proxy.Start("['sum']"))
    assert "not the list ['sum']" in desc and '{"channels": ["sum"]}' in desc
    desc = refused("SequenceManager_BadRequest", lambda: proxy.Start('{"channels": "sum"}'))
    assert "a list of channel names or objects" in desc
    assert proxy.State() == tango.DevState.ON  # nothing started


def test_a_pending_number_far_beyond_the_counter_is_named_in_the_status(device) -> None:
    proxy = device.proxy
    proxy.Start("typo")
    loopscan(1, 0.0, device.session.config.get("diode"), session=device.session)  # scan 2
    assert proxy.AddScan("3") == "pending:3"  # the next one: nothing to say
    assert "far beyond" not in proxy.Status()
    assert proxy.AddScan("999") == "pending:999"  # accepted
    status = " ".join(proxy.Status().split())
    assert "Scan 999 is far beyond the last scan number of" in status
    assert "(2): a typo?" in status and "3 is" not in status
    proxy.Abort()
    assert "far beyond" not in proxy.Status()
