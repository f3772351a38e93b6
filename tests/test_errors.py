"""User errors against bugs (issue 17, item 3): the command line turns only a user error (:class:`UserError`,
:class:`ConfigError`, a data-file error, an unknown name, an OS error) into one line with exit status 2; any
other exception, a plain ``ValueError`` included, is a bug and keeps its traceback."""

from __future__ import annotations

import argparse

import pytest

import vaelab.cli as cli
from vaelab.checkpoint import CheckpointError
from vaelab.errors import ConfigError, UserError, builtin_type_name
from vaelab.models.custom import ContractError


def _main_raising(monkeypatch: pytest.MonkeyPatch, error: BaseException) -> int:
    def command(args: object) -> int:
        raise error

    monkeypatch.setattr(cli, "parse_args", lambda parser, argv: argparse.Namespace(func=command, command="report"))
    return cli.main(["report", "some/run"])


@pytest.mark.parametrize(
    "error",
    [ConfigError("train.lr must be a number > 0, got 0"), UserError("not a text run"), CheckpointError("damaged")],
)
def test_a_user_error_is_one_line_and_exit_status_2(monkeypatch, capsys, error):
    assert _main_raising(monkeypatch, error) == 2
    err = capsys.readouterr().err
    assert err == f"vaelab: error: {error}\n"


@pytest.mark.parametrize("error", [ValueError("shape (3, 4) != (4, 3)"), TypeError("bug"), KeyError("x")])
def test_any_other_exception_is_a_bug_and_keeps_its_traceback(monkeypatch, error):
    with pytest.raises(type(error)):
        _main_raising(monkeypatch, error)


def test_the_user_errors_are_value_errors_and_result_files_keep_their_type():
    assert issubclass(ConfigError, UserError) and issubclass(UserError, ValueError)
    assert issubclass(CheckpointError, UserError) and issubclass(ContractError, UserError)
    assert builtin_type_name(ConfigError("x")) == "ValueError"  # a sweep point's error.json, as before
    assert builtin_type_name(KeyError("x")) == "KeyError"


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", "\xff\xfe"])
def test_a_damaged_json_file_is_a_user_error_naming_it(tmp_path, text):
    from vaelab.runfolder import read_json_object

    path = tmp_path / "summary.json"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(UserError, match=r"summary\.json"):
        read_json_object(path)
