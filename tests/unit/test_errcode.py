"""Error codes: upstream's table kept, ours beside it, each once."""

from __future__ import annotations

import json
import logging

import pytest

from osm import errcode
from osm.logging_setup import MAX_MESSAGE, JsonFormatter


def test_upstream_codes_keep_their_numbers_and_ours_are_in_a_range_upstream_does_not_use() -> None:
    table = errcode.table()
    codes = [e.code for e in table]
    assert codes == sorted(set(codes))
    assert errcode.lookup("e5002") == errcode.ErrCode(
        "E5002", "ErrFetchingPodFromCert", errcode.lookup("E5002").meaning
    )  # type: ignore[union-attr]
    ours = [e for e in table if e.code.startswith("E9")]
    assert ours and all(e.meaning for e in table)
    assert sum(1 for e in table if not e.code.startswith("E9")) == 99  # upstream's v1.x table


def test_a_code_cannot_redefine_an_upstream_one() -> None:
    with pytest.raises(ValueError, match="E5002 is upstream's ErrFetchingPodFromCert"):
        errcode._code("E5002", "Mine", "something else")


def test_log_lines_carry_the_code_and_are_bounded() -> None:
    record = logging.LogRecord("osm.x", logging.WARNING, __file__, 1, "%s", ("y" * (3 * MAX_MESSAGE),), None)
    record.err_code = errcode.ADS_NACK
    line = json.loads(JsonFormatter().format(record))
    assert line["err_code"] == "E9101"
    assert len(line["message"]) < MAX_MESSAGE + 100 and line["message"].endswith(f"({2 * MAX_MESSAGE} more)")


def test_osm_support_error_info_prints_the_table_and_one_code() -> None:
    from click.testing import CliRunner

    from osm.cli.main import cli

    one = CliRunner().invoke(cli, ["support", "error-info", "e5002"])
    assert one.exit_code == 0 and one.output.startswith("E5002  ErrFetchingPodFromCert\n")
    every = CliRunner().invoke(cli, ["support", "error-info"]).output
    assert every.count("\n  ") == len(errcode.table()) and "E9101  ErrProxyRejectedConfig" in every
    missing = CliRunner().invoke(cli, ["support", "error-info", "E0000"])
    assert missing.exit_code != 0 and "no error code 'E0000'" in missing.output
