"""Campaign rules: national minimums by registration date, feed formats, milestones."""

from datetime import date

import pytest

from bot.domain import COUNTRIES
from bot.domain.eci import (
    MINIMUMS_705,
    MINIMUMS_720,
    TABLES,
    FeedError,
    closest_below,
    daily_rate,
    days_left,
    feed_urls,
    implausible_drop,
    milestones,
    parse_feed,
    thresholds_for,
)


@pytest.mark.parametrize("table", TABLES, ids=lambda t: f"x{t.multiplier}")
def test_every_minimum_is_whole_meps_times_the_parliament_size(table):
    assert set(table.minimums) == set(COUNTRIES)
    for code, minimum in table.minimums.items():
        assert minimum % table.multiplier == 0, code
    assert sum(m // table.multiplier for m in table.minimums.values()) == table.multiplier


@pytest.mark.parametrize(
    ("registered", "multiplier"),
    [
        (date(2025, 1, 15), 720),
        (date(2024, 7, 16), 720),
        (date(2024, 7, 15), 705),
        (date(2022, 5, 1), 705),
        (date(2020, 2, 1), 705),
    ],
)
def test_the_table_is_chosen_by_registration_date(registered: date, multiplier: int):
    assert thresholds_for(registered).multiplier == multiplier


def test_registrations_before_2020_are_refused_rather_than_guessed():
    with pytest.raises(ValueError, match="before 2020-02-01"):
        thresholds_for(date(2019, 12, 31))


def test_known_values_from_both_tables():
    assert (MINIMUMS_720["DE"], MINIMUMS_705["DE"]) == (69120, 67680)
    assert (MINIMUMS_720["EL"], MINIMUMS_705["MT"]) == (15120, 4230)


def test_milestones_satisfied_by_counts():
    counts = {"DE": 70000, "EL": 15120, "PL": 20000}
    found = milestones(
        120_000, counts, totals=[100_000, 10_000, 250_000], minimums=MINIMUMS_720, needed=2
    )
    assert [m.key for m in found] == [
        "total:10000",
        "total:100000",
        "country:DE",
        "country:EL",
        "countries:2",
    ]
    assert found[2].value == 69120 and found[2].count == 70000


def test_closest_below_orders_by_share_of_the_minimum():
    counts = {"DE": 60000, "MT": 4000, "PL": 100, "FR": 60000}
    assert [c for c, _, _ in closest_below(counts, MINIMUMS_720)] == ["MT", "DE", "PL"], (
        "FR is over"
    )


def test_days_left_and_daily_rate():
    assert days_left(date(2026, 12, 30), date(2026, 12, 31)) == 2
    assert days_left(date(2027, 1, 5), date(2026, 12, 31)) == 0
    assert days_left(date(2026, 1, 1), None) is None
    assert daily_rate(900_000, 1_000_000, 3) == 33_334
    assert daily_rate(1_000_001, 1_000_000, 3) is None
    assert daily_rate(5, 1_000_000, 0) is None


def test_register_format_maps_gr_to_el():
    payload = {
        "sosReport": {
            "totalSignatures": 123456,
            "entry": [
                {"countryCodeType": "GR", "total": 16000},
                {"countryCodeType": "DE", "total": "70000"},
                {"countryCodeType": "XX", "total": 5},
            ],
        }
    }
    assert parse_feed("eci_register", [payload]) == {None: 123456, "EL": 16000, "DE": 70000}


def test_collection_system_format_reads_progression_and_map():
    progression = {"signatureCount": 5000, "goal": 1000000}
    by_country = {"signatureCountryCount": [{"countryCode": "gr", "count": 10}]}
    assert parse_feed("eci_cocs", [progression, by_country]) == {None: 5000, "EL": 10}
    assert feed_urls("eci_cocs", "https://eci.ec.europa.eu/045/") == [
        "https://eci.ec.europa.eu/045/public/api/report/progression",
        "https://eci.ec.europa.eu/045/public/api/report/map",
    ]


def test_json_format_follows_the_configured_paths():
    payload = {"data": {"count": 42, "byCountry": {"DE": 7, "GR": 3}}}
    assert parse_feed(
        "json", [payload], total_path="data.count", countries_path="data.byCountry"
    ) == {None: 42, "DE": 7, "EL": 3}
    listed = {"total": 9, "countries": [{"country": "FR", "count": 4}]}
    assert parse_feed("json", [listed], countries_path="countries") == {None: 9, "FR": 4}


@pytest.mark.parametrize(
    ("payload", "says"),
    [
        ({"total": "lots"}, "not a whole number"),
        ({"total": -5}, "negative"),
        ({"total": 1.5}, "not a whole number"),
        ({"total": True}, "not a whole number"),
        ({"count": 5}, "no `total`"),
        (["not", "an", "object"], "no `total`"),
    ],
)
def test_nonsense_is_a_feed_error(payload: object, says: str):
    with pytest.raises(FeedError, match=says):
        parse_feed("json", [payload])


def test_a_drop_of_more_than_half_is_implausible():
    assert implausible_drop({None: 100_000}, {None: 50_000}) == ""
    assert "fell from 100000 to 49999" in implausible_drop({None: 100_000}, {None: 49_999})
    assert "DE fell" in implausible_drop({"DE": 1000}, {None: 5, "DE": 10})
    assert implausible_drop({}, {None: 1}) == ""
