""".dockerignore: Docker's cleaning, Go's match syntax with `**`, exceptions, last match wins."""

from __future__ import annotations

import pytest

from dockyard.core.build.dockerignore import IgnoreMatcher, clean_path, read_patterns
from dockyard.core.build.globs import match_component
from dockyard.core.errors import UsageError


def test_read_patterns_cleans_like_docker() -> None:
    text = (
        "\ufeff# comment\n  \n */temp*\n/abs/path/\n./rel\n!  keep.md \n a//b/../c \n #not-a-comment\n!/x\n"
    )
    assert read_patterns(text) == ["*/temp*", "abs/path", "rel", "!keep.md", "a/c", "#not-a-comment", "!x"]


@pytest.mark.parametrize(
    ("path", "cleaned"),
    [("", "."), ("./a/", "a"), ("a//b", "a/b"), ("/../x", "/x"), ("//x", "/x"), ("../x", "../x")],
)
def test_clean_path_is_go_filepath_clean(path: str, cleaned: str) -> None:
    assert clean_path(path) == cleaned


REFERENCE = ["# comment", "*/temp*", "*/*/temp*", "temp?"]


@pytest.mark.parametrize(
    ("patterns", "path", "excluded"),
    [
        # The reference's example file.
        (REFERENCE, "somedir/temporary.txt", True),
        (REFERENCE, "somedir/temp", True),
        (REFERENCE, "somedir/subdir/temporary.txt", True),
        (REFERENCE, "tempa", True),
        (REFERENCE, "tempb/inside", True),  # a matched directory takes its contents
        (REFERENCE, "temporary.txt", False),
        (REFERENCE, "a/b/c/temporary.txt", False),
        # `**`: any number of directories, zero included.
        (["**/*.go"], "main.go", True),
        (["**/*.go"], "a/b/main.go", True),
        (["**/*.go"], "main.gox", False),
        (["a/**/b"], "a/b", True),
        (["a/**/b"], "a/x/y/b", True),
        (["a/**"], "a/x", True),
        (["a/**"], "a", False),
        (["**"], "anything/at/all", True),
        # Exceptions: the last match decides.
        (["*.md", "!README.md"], "README.md", False),
        (["*.md", "!README.md"], "CHANGES.md", True),
        (["*.md", "!README*.md", "README-secret.md"], "README-secret.md", True),
        (["*.md", "!README*.md", "README-secret.md"], "README-public.md", False),
        (["*.md", "README-secret.md", "!README*.md"], "README-secret.md", False),
        (["build", "!build/keep.txt"], "build/keep.txt", False),
        (["build", "!build/keep.txt"], "build/other.txt", True),
        (["!x"], "x", False),
        # Go filepath.Match syntax.
        (["file[0-9].txt"], "file7.txt", True),
        (["file[^0-9].txt"], "file7.txt", False),
        (["file[^0-9].txt"], "filex.txt", True),
        (["a\\*b"], "a*b", True),
        (["a\\*b"], "axb", False),
        (["*"], "a/b", True),  # via the parent directory a
        (["a.(b)+"], "a.(b)+", True),
        (["."], "anything", False),
    ],
)
def test_matching(patterns: list[str], path: str, excluded: bool) -> None:
    assert IgnoreMatcher(read_patterns("\n".join(patterns))).excluded(path) is excluded


@pytest.mark.parametrize(
    ("patterns", "directory", "descend"),
    [
        (["build"], "build", False),
        (["build", "!build/keep.txt"], "build", True),
        (["build", "!build/keep.txt"], "other", False),
        (["build", "!build/*/keep.txt"], "build/sub", True),
        (["build", "!build/x*/keep.txt"], "build/sub", False),
        (["*", "!**/keep"], "deep/down", True),
        (["*", "!src"], "src", True),
    ],
)
def test_must_descend(patterns: list[str], directory: str, descend: bool) -> None:
    assert IgnoreMatcher(patterns).must_descend(directory) is descend


@pytest.mark.parametrize("pattern", ["!", "[", "a[b", "[]a]", "x[a-]"])
def test_bad_patterns_are_refused(pattern: str) -> None:
    with pytest.raises(UsageError):
        IgnoreMatcher([pattern])


def test_empty_matcher() -> None:
    matcher = IgnoreMatcher.from_text(b"# nothing\n\n")
    assert not matcher and not matcher.excluded("a") and not matcher.has_exceptions


@pytest.mark.parametrize(
    ("pattern", "name", "matches"),
    [
        ("*.py", "a.py", True),
        ("?.py", "ab.py", False),
        ("[a-c]x", "bx", True),
        ("\\[x", "[x", True),
        ("*", "", True),
    ],
)
def test_go_match_component(pattern: str, name: str, matches: bool) -> None:
    assert match_component(pattern, name) is matches
