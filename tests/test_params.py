"""The pure parsers behind every platform's argument conversion."""

import re
from datetime import UTC, datetime, time, timedelta

import pytest

from bot.domain import LANGUAGES, BadArgument
from bot.params import (
    ParseEnv,
    find_url,
    parse_country,
    parse_duration,
    parse_language,
    parse_language_list,
    parse_targets,
    parse_timezone,
    parse_url,
    parse_when,
)

# Monday 2 March 2026, 09:00 UTC = 10:00 in Brussels (CET).
ENV = ParseEnv(
    now=datetime(2026, 3, 2, 9, 0, tzinfo=UTC), timezone="Europe/Brussels", platform="test"
)


@pytest.mark.parametrize(
    ("text", "code"),
    [("pl", "pl"), ("PL", "pl"), ("Polish", "pl"), (" de ", "de"), ("greek", "el"), ("ga", "ga")],
)
def test_parse_language_accepts_codes_and_english_names(text, code):
    assert parse_language(text) == code


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("cz", "country Czechia"),
        ("SE", "country Sweden"),
        ("polsh", "did you mean `pl`"),
        ("ru", "not an official EU language"),
        ("klingon", "Use a two-letter code"),
    ],
)
def test_parse_language_refuses_others_with_a_hint(text, hint):
    with pytest.raises(BadArgument, match=hint):
        parse_language(text)


def test_parse_language_list_keeps_order_and_drops_duplicates():
    assert parse_language_list("de, fr;de pl") == ("de", "fr", "pl")
    with pytest.raises(BadArgument):
        parse_language_list(" , ")


@pytest.mark.parametrize(
    ("text", "code"),
    [("PL", "PL"), ("pl", "PL"), ("Poland", "PL"), ("GR", "EL"), ("EL", "EL"), ("czechia", "CZ")],
)
def test_parse_country_accepts_eu_codes_names_and_the_gr_alias(text, code):
    assert parse_country(text) == code


@pytest.mark.parametrize(
    ("text", "hint"), [("UK", "not an EU member state"), ("cs", "language Czech")]
)
def test_parse_country_refuses_non_members(text, hint):
    with pytest.raises(BadArgument, match=hint):
        parse_country(text)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("15m", 900),
        ("2h30m", 9000),
        ("1d 2h", 93600),
        ("3 days", 259200),
        ("in 1w", 604800),
        ("+45min", 2700),
    ],
)
def test_parse_duration_reads_compound_spans(text, seconds):
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("soon", "not a duration"),
        ("0s", "no time at all"),
        ("3y", "not a duration"),
        ("800d", "two years"),
        ("99999999999999999999s", "two years"),  # once an overflow: a crash, not an answer
    ],
)
def test_parse_duration_refuses_nonsense(text, message):
    with pytest.raises(BadArgument, match=message):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("in 3d", datetime(2026, 3, 5, 9, 0, tzinfo=UTC)),
        ("2h", datetime(2026, 3, 2, 11, 0, tzinfo=UTC)),
        ("2026-12-01", datetime(2026, 12, 1, 8, 0, tzinfo=UTC)),  # 09:00 CET
        ("2026-07-01 14:30", datetime(2026, 7, 1, 12, 30, tzinfo=UTC)),  # CEST
        ("2026-07-01T14:30+00:00", datetime(2026, 7, 1, 14, 30, tzinfo=UTC)),
        ("14:30", datetime(2026, 3, 2, 13, 30, tzinfo=UTC)),
        ("08:00", datetime(2026, 3, 3, 7, 0, tzinfo=UTC)),  # already past today: tomorrow
        ("tomorrow", datetime(2026, 3, 3, 8, 0, tzinfo=UTC)),
    ],
)
def test_parse_when_reads_moments_in_the_campaign_zone(text, expected):
    result = parse_when(text, ENV)
    assert result == expected
    assert result.tzinfo is not None


def test_parse_when_uses_a_given_zone_and_date_only_time():
    assert parse_when(
        "2026-12-01", ENV, zone="Europe/Lisbon", date_only_at=time(23, 59)
    ) == datetime(2026, 12, 1, 23, 59, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("next blursday", "not a date or time"),
        ("2026-13-01", "not a date or time"),
        ("25:00", "not a time of day"),
        ("2026-03-29 02:30", "clocks skip"),  # spring forward in Brussels
        # Far dates were stored and then broke every listing that showed them.
        ("9999-12-31T23:30:00+00:00", "too far ahead"),
        ("2028-03-03", "too far ahead"),
        ("0001-01-01T00:30:00+01:00", "too far in the past"),
        ("1900-01-01", "too far in the past"),
    ],
)
def test_parse_when_refuses_bad_dates_and_dst_gaps(text, message):
    with pytest.raises(BadArgument, match=message):
        parse_when(text, ENV)


def test_parse_when_refuses_a_far_date_that_a_zone_pushes_off_the_calendar():
    with pytest.raises(BadArgument, match="too far ahead"):
        parse_when("9999-12-31 23:59", ENV, zone="America/New_York")
    assert parse_when("2027-12-31 23:59", ENV, zone="America/New_York").year == 2028


def test_a_date_just_inside_two_years_is_kept_and_a_recent_past_one_left_to_the_command():
    assert parse_when("2028-02-28", ENV).year == 2028
    assert parse_when("2020-01-01", ENV) < ENV.now


def test_parse_timezone_accepts_iana_names_case_insensitively_and_suggests():
    assert parse_timezone("europe/warsaw") == "Europe/Warsaw"
    assert parse_timezone("UTC") == "UTC"
    with pytest.raises(BadArgument, match="did you mean `Europe/Brussels`"):
        parse_timezone("Europe/Brusels")
    with pytest.raises(BadArgument, match="not a time zone"):
        parse_timezone("Mars/Olympus")
    with pytest.raises(BadArgument, match="300 characters long"):
        parse_timezone("A" * 300)  # once an OSError from the zone database


@pytest.mark.parametrize(
    ("text", "expected", "every"),
    [
        ("pl,de,fr", ("pl", "de", "fr"), False),
        ("pl de;pl", ("pl", "de"), False),
        ("Polish", ("pl",), False),
        ("all", tuple(LANGUAGES), True),
        ("ALL", tuple(LANGUAGES), True),
    ],
)
def test_target_languages_read_a_list_or_all(text, expected, every):
    targets = parse_targets(text)
    assert tuple(targets) == expected and targets.every is every


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("see https://example.org/pl.odt, thanks", "https://example.org/pl.odt"),
        ("(https://docs.example.org/d/1?x=2).", "https://docs.example.org/d/1?x=2"),
        ("http://a.eu", "http://a.eu"),
        ("no link here", None),
        ("ftp://example.org/x", None),
        ("https://localhost", None),
    ],
)
def test_a_link_is_found_in_a_note(text, found):
    assert find_url(text) == found


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("ftp://example.org/x", "`ftp://example.org/x` is not a web address"),
        ("example.org", "`example.org` is not a web address"),
        ("https://" + "a" * 2000 + ".eu", "2,011 characters long; 2,000 at most"),
    ],
)
def test_a_bad_source_link_is_refused_with_words(text, error):
    with pytest.raises(BadArgument, match=re.escape(error)):
        parse_url(text)
    assert parse_url("<https://example.org/a b>".replace(" ", "")) == "https://example.org/ab"
