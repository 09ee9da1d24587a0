import datetime as dt

import pytest

from flightbase_server.workspaces import SettingsError, check_workspace_name, parse_settings


@pytest.mark.parametrize(
    ("props", "expected"),
    [
        ({}, {"gpu_quota": None, "managers": [], "idle_timeout_minutes": 60}),
        ({"gpu_quota": "8"}, {"gpu_quota": 8}),
        ({"gpu_quota": ""}, {"gpu_quota": None}),
        ({"managers": "a, b,,c"}, {"managers": ["a", "b", "c"]}),
        ({"allowed_images": ["x", "y"]}, {"allowed_images": ["x", "y"]}),
        ({"end_date": "2027-01-31"}, {"end_date": dt.date(2027, 1, 31)}),
        ({"allow_borrowing": "false"}, {"allow_borrowing": False}),
    ],
)
def test_parse(props, expected):
    settings = parse_settings(props)
    for key, value in expected.items():
        assert getattr(settings, key) == value


@pytest.mark.parametrize(
    ("props", "field"),
    [
        ({"gpu_quota": -1}, "gpu_quota"),
        ({"gpu_quota": "x"}, "gpu_quota"),
        ({"storage_quota_gb": 0}, "storage_quota_gb"),
        ({"fairshare_weight": 0}, "fairshare_weight"),
        ({"nonsense": 1}, "nonsense"),
        ({"start_date": "2027-01-02", "end_date": "2027-01-01"}, "end_date"),
    ],
)
def test_errors_name_the_field(props, field):
    with pytest.raises(SettingsError) as info:
        parse_settings(props)
    assert field in info.value.errors


def test_round_trip_through_properties():
    s = parse_settings({"gpu_quota": 4, "end_date": "2027-01-01", "managers": ["m"]})
    assert parse_settings(s.to_properties()) == s


def test_is_active():
    s = parse_settings({"start_date": "2027-01-01", "end_date": "2027-01-31"})
    assert s.is_active(dt.date(2027, 1, 15)) is None
    assert "starts on" in s.is_active(dt.date(2026, 12, 31))
    assert "ended on" in s.is_active(dt.date(2027, 2, 1))


@pytest.mark.parametrize(("name", "ok"), [("vision", True), ("a", True), ("team-2", True), ("Vision", False), ("-x", False), ("x-", False), ("", False), ("a" * 41, False)])
def test_workspace_names(name, ok):
    assert (check_workspace_name(name) is None) == ok
