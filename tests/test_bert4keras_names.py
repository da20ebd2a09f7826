"""Every public name of bert4keras 0.11.5's six modules: provided by bert4sim, or a clear "not provided" error.

The names come from bert4keras itself (tests/fixtures/make_bert4keras_names.py -> bert4keras_names.json);
README's "bert4keras names" table lists each of them with its status.
"""
import importlib
import json
import os
import re

import pytest

from bert4sim.unprovided import NOT_PROVIDED, NotProvidedError

HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, "fixtures", "bert4keras_names.json"), encoding="utf-8") as _f:
    NAMES = json.load(_f)
ALL = [(module, name) for module, names in NAMES.items() for name in names]
NOT = {(module, name) for module, names in NOT_PROVIDED.items() for name in names if name.isidentifier()}


def test_the_census_has_bert4keras_129_names():
    assert len(ALL) == 129 and set(NAMES) == {"backend", "layers", "models", "optimizers", "snippets", "tokenizers"}
    assert NOT <= set(ALL)  # the refusal table names only real bert4keras names


@pytest.mark.parametrize("module,name", ALL)
def test_name_resolves_or_says_it_is_not_provided(module, name):
    namespace = importlib.import_module(f"bert4sim.{module}")
    if (module, name) not in NOT:
        assert getattr(namespace, name) is not None
        return
    with pytest.raises(NotProvidedError, match=rf"bert4sim does not provide bert4keras's {module}\.{name} .*instead: "):
        getattr(namespace, name)
    with pytest.raises(NotProvidedError, match=rf"{module}\.{name}"):
        exec(f"from bert4sim.{module} import {name}", {})


def test_from_import_of_t5_gives_the_clear_error_and_unknown_names_stay_attribute_errors():
    with pytest.raises(ImportError, match=r"does not provide bert4keras's models\.T5 .*KerasHub"):
        exec("from bert4sim.models import T5", {})
    with pytest.raises(AttributeError, match="has no attribute 'NoSuchModel'"):
        importlib.import_module("bert4sim.models").NoSuchModel


def test_model_strings_of_other_families_are_refused_with_the_alternative():
    from bert4sim.models import build_transformer_model

    with pytest.raises(ValueError, match=r"model must be one of .*'albert'.*does not provide bert4keras's ALBERT"):
        build_transformer_model(model="albert", vocab_size=10, hidden_size=4, num_hidden_layers=1,
                                num_attention_heads=1, intermediate_size=8)


def test_readme_table_lists_every_name_with_its_status():
    with open(os.path.join(HERE, "..", "README.md"), encoding="utf-8") as f:
        readme = f.read()
    rows = re.findall(r"^\| `(\w+)` \| `(\w+)` \| (provided|different|not provided) \|", readme, re.M)
    status = {(module, name): state for module, name, state in rows}
    assert sorted(status) == sorted(ALL)
    assert {key for key, state in status.items() if state == "not provided"} == NOT
