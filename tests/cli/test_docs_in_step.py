"""--help and man/medimg.1 document exactly the options the parser accepts,
for every reading command (man/medimg.1)."""
import re

import pytest

from conftest import SOURCE_DIR, run

MAN = (SOURCE_DIR / "man" / "medimg.1").read_text()
OPTION = re.compile(r"(?<![\w-])(--[a-z][a-z-]*|-j)(?![\w-])")


def accepted(command):
    """The options in the command's spec table (cli/{command}.cpp), plus the
    configuration options when it takes them (cli/cli_util.cpp)."""
    source = (SOURCE_DIR / "cli" / f"{command}.cpp").read_text()
    table = source[source.index("kOptions ="):]
    table = table[:table.index("});") if "with_config_options" in table[:40] else table.index("};")]
    opts = set(re.findall(r'\{"(-[-a-z]+)",\s*(?:true|false)\}', table))
    if "with_config_options" in table:
        util = (SOURCE_DIR / "cli" / "cli_util.cpp").read_text()
        flags = util[util.index("kConfigFlags ="):]
        flags = flags[:flags.index("};")]
        opts |= set(re.findall(r'\{"(--[a-z-]+)",\s*"', flags)) | {"--config"}
    return opts | {"--help"}


def in_help(command):
    text = run(command, "--help", check=0).stdout.decode()
    options = text[text.index("options:"):]
    return set(OPTION.findall(options.split("\nexit status")[0]))


def in_man(command):
    synopsis = MAN[MAN.index(".SH SYNOPSIS"):MAN.index(".SH DESCRIPTION")]
    blocks = re.split(r"^\.br$", synopsis, flags=re.M)
    opts = set()
    for block in blocks:
        if re.search(rf"^\.B medimg {command}\b", block, re.M):
            opts |= set(OPTION.findall(block.replace("\\-", "-")))
    return opts | {"--help"}


@pytest.mark.parametrize("command", ["filter", "labels", "info"])
def test_help_man_and_parser_agree(command):
    parser = accepted(command)
    assert in_help(command) == parser, (command, in_help(command) ^ parser)
    assert in_man(command) == parser, (command, in_man(command) ^ parser)
    # And the parser really knows each one (not an "unknown option").
    for option in parser:
        p = run(command, option)
        assert "unknown option" not in p.stderr, (command, option, p.stderr)


def test_an_option_the_parser_lacks_is_unknown():
    p = run("filter", "--no-such-option")
    assert p.returncode == 2 and "unknown option '--no-such-option'" in p.stderr


def test_version_is_in_help():
    text = run("--help", check=0).stdout.decode()
    assert "--version" in text
    assert run("--version", check=0).stdout.decode().startswith("medimg ")
