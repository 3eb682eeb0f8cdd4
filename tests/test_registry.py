import pytest

from gancv.errors import GancvError, UnknownNameError
from gancv.registry import Registry


def test_register_create_list():
    reg = Registry("thing")

    @reg.register("a", description="the a")
    def make_a(x=1):
        return ("a", x)

    reg.register("b", lambda: "b")
    assert reg.names() == ["a", "b"]
    assert reg.create("a", x=3) == ("a", 3)
    assert reg.describe()["a"] == "the a"
    assert "a" in reg and len(reg) == 2


def test_unknown_name_lists_valid_ones():
    reg = Registry("widget")
    reg.register("alpha", object())
    with pytest.raises(UnknownNameError, match="unknown widget 'beta'; choose one of: alpha"):
        reg.get("beta")


def test_duplicate_is_loud():
    reg = Registry("widget")
    reg.register("alpha", object())
    with pytest.raises(GancvError, match="registered twice"):
        reg.register("alpha", object())


def test_bad_keyword_is_user_error():
    reg = Registry("widget")
    reg.register("alpha", lambda width=1: width)
    with pytest.raises(GancvError, match="unexpected keyword"):
        reg.create("alpha", widht=2)
