"""A local name that is not UTF-8 cannot become an S3 key: one line and exit 1, never a traceback."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from augment.storage.s3_url import _UNDECODABLE, unsafe_key_reason
from tests.conftest import gradient
from tests.support.blockrun import ei_env, run_block

pytestmark = pytest.mark.xdist_group("s3")


def test_a_name_that_is_not_utf8_is_refused_as_an_s3_key(s3server, tmp_path: Path):
    s3server.client().create_bucket(Bucket="edge-names")
    root = os.fsencode(tmp_path / "in")
    os.makedirs(root + b"/x")
    gradient("RGB", (8, 8)).save(root + b"/x/caf\xe9.png")
    args = ["--in-directory", str(tmp_path / "in"), "--dest", "s3://edge-names/out/", "--copies", "1"]
    result = run_block(args, workdir=tmp_path, env=ei_env(s3server.env()), timeout=120)
    assert result.returncode == 1, result.output
    assert "Traceback" not in result.output
    assert "not valid UTF-8 (S3 keys must be)" in result.stdout


def _old_undecodable(key: str) -> bool:
    """The check as it was before it became a regex (2303500)."""
    return any(0xDC80 <= ord(c) <= 0xDCFF for c in key)


def test_the_not_utf8_regex_flags_exactly_the_code_points_the_old_loop_did():
    """Every code point, alone and inside a key. Lone surrogates outside DC80-DCFF (D800-DC7F, DD00-DFFF) are
    not what surrogateescape makes: neither version flags them."""
    for cp in range(0x110000):
        for key in (chr(cp), f"a/{chr(cp)}b.png"):
            assert (_UNDECODABLE.search(key) is not None) == _old_undecodable(key), hex(cp)


_SURROGATES = st.characters(categories=["Cs"])  # st.characters() alone never draws them
_NEAR = st.characters(min_codepoint=0xDC70, max_codepoint=0xDD10, categories=["Cs"])  # the range's two edges


@settings(max_examples=3000, deadline=None)
@given(st.text(alphabet=st.one_of(st.characters(), _SURROGATES, _NEAR), max_size=40))
def test_the_not_utf8_check_equals_the_old_loop_on_random_keys(key: str):
    """Random keys mixing any character (controls, non-BMP) with surrogates: the regex agrees with the old loop,
    and the key is refused for not being UTF-8 exactly when the old loop would have been reached and said so."""
    assert (_UNDECODABLE.search(key) is not None) == _old_undecodable(key), ascii(key)
    reason = unsafe_key_reason(key)
    if _old_undecodable(key):
        assert reason is not None, ascii(key)
    elif reason is not None:
        assert reason != "not valid UTF-8 (S3 keys must be)", ascii(key)
