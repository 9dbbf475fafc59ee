import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

ENCODINGS = ["cl100k_base", "o200k_base"]


@pytest.fixture(params=ENCODINGS)
def name(request):
    return request.param


@pytest.fixture
def enc(name):
    import arrowtok

    return arrowtok.get_encoding(name)


@pytest.fixture
def ref(name):
    from oracle import oracle

    return oracle(name)
