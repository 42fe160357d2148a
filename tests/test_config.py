"""Config loading, validation and saving: every bad input gets one clear message."""

import json
from pathlib import Path

import pytest
from support import REPO

from resnet_tui.config import (
    FIELDS,
    SCHEMA,
    ConfigError,
    config_from_values,
    default_values,
    diff_values,
    load_config,
    parse_override,
    save_config,
    schedule_name,
)

SEED_KEYS = ("CONFIG_PATH", "DATA_PATH", "LOG_PATH", "CHECKPOINT_PATH", "RESULT_PATH", "MODEL_PATH", "ERROR_PATH",
             "LIGHT_MODE", "AUGMENT_MODE", "L2_MODE", "DROPOUT_MODE", "OPTIMIZER", "SCHEDULE_MODE",
             "EARLY_STOP_MODE", "EPOCHS_COUNT", "BATCH_SIZE")


def write(tmp_path: Path, data, name="m8_test.json") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data, indent=2))
    return path


def test_base_config_keeps_seed_values_verbatim():
    raw = json.loads((REPO / "configs" / "m8_base.json").read_text())
    for key in SEED_KEYS:
        assert key in raw, key
    assert raw["L2_MODE"] == {"enabled": True, "lambda": 0.0001}
    assert raw["OPTIMIZER"] == {"type": "sgd", "learning_rate": 0.1, "momentum": 0.9}
    assert raw["EPOCHS_COUNT"] == 200 and raw["BATCH_SIZE"] == 128
    assert raw["MODEL_PATH"] == "artifact/model/"
    assert raw["STEP_SCHEDULE"]["boundaries"] == [32000, 48000]
    assert raw["MAX_ITERATIONS"] == 64000
    config = load_config(REPO / "configs" / "m8_base.json")
    assert config.model_number == 8 and config.warnings == []


@pytest.mark.parametrize("name", ["m8_base", "m8_light", "m8_demo", "m8_fast"])
def test_shipped_configs_are_valid(name):
    config = load_config(REPO / "configs" / f"{name}.json")
    assert config.name == name
    assert config.L2_MODE["lambda"] == 0.0001  # seed-style attribute access


def test_light_and_demo_configs():
    assert load_config(REPO / "configs" / "m8_light.json").LIGHT_MODE is True
    assert load_config(REPO / "configs" / "m8_demo.json").get("DATASET.source") == "synthetic"


def test_missing_keys_take_defaults_and_model_number_comes_from_file_name(tmp_path):
    config = load_config(write(tmp_path, {"BATCH_SIZE": 64}, "m8_small.json"))
    assert config.BATCH_SIZE == 64
    assert config.model_number == 8
    assert config.get("STEP_SCHEDULE.boundaries") == [32000, 48000]


def test_malformed_json_names_file_line_and_column(tmp_path):
    path = write(tmp_path, '{\n  "BATCH_SIZE": 128,\n  "EPOCHS_COUNT": 200,\n}\n')
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert str(path) in message and "line 4, column 1" in message
    assert "Traceback" not in message


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "nope.json")


@pytest.mark.parametrize("raw, key, hint", [
    ({"OPTIMISER": {}}, "OPTIMISER", "did you mean 'OPTIMIZER'"),
    ({"OPTIMIZER": {"learning_rat": 0.1}}, "OPTIMIZER.learning_rat", "did you mean 'OPTIMIZER.learning_rate'"),
    ({"BATCHSIZE": 3}, "BATCHSIZE", "did you mean 'BATCH_SIZE'"),
])
def test_unknown_key_names_the_closest_known_key(raw, key, hint):
    with pytest.raises(ConfigError) as err:
        config_from_values(raw, "m8_x")
    assert f"{key}: unknown key; {hint}" in str(err.value)


@pytest.mark.parametrize("raw, key, allowed", [
    ({"BATCH_SIZE": "128"}, "BATCH_SIZE", "an integer >= 1"),
    ({"BATCH_SIZE": 0}, "BATCH_SIZE", "an integer >= 1"),
    ({"BATCH_SIZE": 12.5}, "BATCH_SIZE", "an integer"),
    ({"LIGHT_MODE": 1}, "LIGHT_MODE", "true or false"),
    ({"OPTIMIZER": {"learning_rate": -0.1}}, "OPTIMIZER.learning_rate", "a number > 0"),
    ({"OPTIMIZER": {"learning_rate": 0}}, "OPTIMIZER.learning_rate", "a number > 0"),
    ({"OPTIMIZER": {"type": "rmsprop"}}, "OPTIMIZER.type", 'one of "sgd", "adam"'),
    ({"OPTIMIZER": {"momentum": 1.5}}, "OPTIMIZER.momentum", "<= 0.999"),
    ({"DATASET": {"source": "imagenet"}}, "DATASET.source", 'one of "cifar10"'),
    ({"L2_MODE": 0.0001}, "L2_MODE", "must be an object"),
    ({"STEP_SCHEDULE": {"boundaries": [32000, "48000"]}}, "STEP_SCHEDULE.boundaries", "a list of integers"),
    ({"MODEL_NUMBER": 5}, "MODEL_NUMBER", "one of 1, 8"),
])
def test_wrong_type_or_range_names_key_and_what_is_allowed(raw, key, allowed):
    with pytest.raises(ConfigError) as err:
        config_from_values(raw, "cfg")
    message = str(err.value)
    assert message.startswith("cfg: " + key) and allowed in message, message
    assert [i.key for i in err.value.issues] == [key]


@pytest.mark.parametrize("raw, message", [
    # keras.utils.set_random_seed: "Seed must be between 0 and 2**32 - 1"
    ({"SEED": 2**32}, "SEED: got 4294967296, expected an integer >= 0 and <= 4294967295"),
    # the schedule compares them with the int64 iteration count
    ({"STEP_SCHEDULE": {"boundaries": [32000, 2**63]}},
     "STEP_SCHEDULE.boundaries: got [32000, 9223372036854775808], "
     "every item must be >= 1 and <= 9223372036854775807"),
])
def test_ranges_are_what_keras_and_tensorflow_accept(raw, message):
    with pytest.raises(ConfigError) as err:
        config_from_values(raw, "cfg")
    assert str(err.value) == f"cfg: {message}"
    edge = {"SEED": 2**32 - 1} if "SEED" in raw else {"STEP_SCHEDULE": {"boundaries": [32000, 2**63 - 1]}}
    config_from_values(edge, "cfg")


def test_a_config_that_is_not_utf8_names_the_file_and_the_byte(tmp_path):
    path = tmp_path / "m8_x.json"
    path.write_bytes(b'{"_c":"caf\xe9"}')
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value) == f"{path}: not UTF-8 text: byte 0xe9 at offset 10 cannot be decoded; save it as UTF-8"


def test_a_duplicate_key_is_refused_naming_the_key_and_both_lines(tmp_path):
    path = write(tmp_path, '{\n  "BATCH_SIZE": 64,\n  "L2_MODE": {"enabled": true},\n'
                           '  "DROPOUT_MODE": {"enabled": false},\n  "BATCH_SIZE": 128\n}\n')
    with pytest.raises(ConfigError) as err:
        load_config(path)  # "enabled" twice, but in two objects: fine; BATCH_SIZE twice in one: refused
    assert str(err.value) == (f'{path}: duplicate key "BATCH_SIZE" at lines 2 and 5; '
                              f"JSON would keep only the last: remove one")
    nested = write(tmp_path, '{"OPTIMIZER": {"type": "sgd",\n "x": "\\"{", "type": "adam"}}', "m8_n.json")
    with pytest.raises(ConfigError, match='duplicate key "type" at lines 1 and 2'):
        load_config(nested)


def test_unsorted_schedule_boundaries_refused():
    with pytest.raises(ConfigError, match="STEP_SCHEDULE.boundaries: must be strictly increasing"):
        config_from_values({"STEP_SCHEDULE": {"boundaries": [48000, 32000]}}, "cfg")
    with pytest.raises(ConfigError, match="strictly increasing"):
        config_from_values({"STEP_SCHEDULE": {"boundaries": [32000, 32000]}}, "cfg")


def test_plateau_and_step_schedule_exclude_each_other():
    with pytest.raises(ConfigError, match="cannot both be enabled"):
        config_from_values({"SCHEDULE_MODE": {"enabled": True}}, "cfg")
    config = config_from_values({"SCHEDULE_MODE": {"enabled": True}, "STEP_SCHEDULE": {"enabled": False}}, "cfg")
    assert config.SCHEDULE_MODE["patience"] == 10


def test_existing_configs_take_the_new_keys_at_defaults_that_change_nothing():
    """The seed's recipe: step schedule, coupled L2, plain SGD, no smoothing (tests/test_training.py
    checks that these defaults train bit-identically to a config without the keys)."""
    for name in ("m8_base", "m8_light", "m8_demo"):  # written before the new keys
        config = load_config(REPO / "configs" / f"{name}.json")
        assert schedule_name(config.values) == "step", name
        assert config.OPTIMIZER["weight_decay"] == 0.0 and config.LABEL_SMOOTHING == 0.0
        assert config.L2_MODE["enabled"] and config.OPTIMIZER["type"] == "sgd"


def test_fast_config_changes_only_the_training_recipe():
    """m8_fast: the same model, data, split and augmentation as m8_base; 50 epochs of another recipe."""
    base, fast = (load_config(REPO / "configs" / f"{name}.json") for name in ("m8_base", "m8_fast"))
    recipe = {key.split(".")[0] for key, _, _ in diff_values(base.values, fast.values)}
    assert recipe == {"OPTIMIZER", "L2_MODE", "LABEL_SMOOTHING", "STEP_SCHEDULE", "COSINE_SCHEDULE",
                      "EPOCHS_COUNT", "MAX_ITERATIONS"}
    assert schedule_name(fast.values) == "cosine" and fast.EPOCHS_COUNT == 50 and fast.MAX_ITERATIONS == 0
    assert fast.OPTIMIZER["nesterov"] and fast.OPTIMIZER["weight_decay"] > 0 and fast.LABEL_SMOOTHING > 0


SWITCHES = ["STEP_SCHEDULE.enabled", "COSINE_SCHEDULE.enabled", "ONE_CYCLE_SCHEDULE.enabled", "SCHEDULE_MODE.enabled"]


@pytest.mark.parametrize("first, second", [(a, b) for i, a in enumerate(SWITCHES) for b in SWITCHES[i + 1:]])
def test_learning_rate_schedules_exclude_each_other_naming_both_keys(first, second):
    values = {"STEP_SCHEDULE": {"enabled": False}}
    for key in (first, second):
        values[key.split(".")[0]] = {"enabled": True}
    with pytest.raises(ConfigError) as err:
        config_from_values(values, "cfg")
    assert [str(i) for i in err.value.issues] == [
        f"{second}: {first} and {second} cannot both be enabled (one learning-rate schedule at a time); disable one"]


@pytest.mark.parametrize("switch, name", [("COSINE_SCHEDULE", "cosine"), ("ONE_CYCLE_SCHEDULE", "one_cycle"),
                                          ("SCHEDULE_MODE", "plateau"), (None, "constant")])
def test_one_schedule_at_a_time_is_accepted(switch, name):
    values = {"STEP_SCHEDULE": {"enabled": False}}
    if switch:
        values[switch] = {"enabled": True}
    assert schedule_name(config_from_values(values, "cfg").values) == name


def test_one_cycle_must_end_after_its_warmup():
    with pytest.raises(ConfigError, match=r"ONE_CYCLE_SCHEDULE.total_steps: must be above "
                                          r"ONE_CYCLE_SCHEDULE.warmup_steps \(500\) or 0"):
        config_from_values({"ONE_CYCLE_SCHEDULE": {"warmup_steps": 500, "total_steps": 500}}, "cfg")
    config = config_from_values({"ONE_CYCLE_SCHEDULE": {"warmup_steps": 500, "total_steps": 501}}, "cfg")
    assert config.ONE_CYCLE_SCHEDULE["total_steps"] == 501


@pytest.mark.parametrize("values, message", [
    ({"OPTIMIZER": {"weight_decay": 5e-4}},
     "OPTIMIZER.weight_decay: decoupled weight decay and L2_MODE.enabled (the coupled L2 penalty) cannot both be on"),
    ({"OPTIMIZER": {"type": "adamw"}, "L2_MODE": {"enabled": False}},
     "OPTIMIZER.weight_decay: OPTIMIZER.type adamw needs OPTIMIZER.weight_decay > 0 (with 0 it is adam)"),
    ({"OPTIMIZER": {"type": "adam", "weight_decay": 1e-4}, "L2_MODE": {"enabled": False}},
     "OPTIMIZER.weight_decay: OPTIMIZER.type adam with decoupled weight decay is adamw"),
])
def test_weight_decay_choices_that_contradict_each_other_are_refused(values, message):
    with pytest.raises(ConfigError) as err:
        config_from_values(values, "cfg")
    assert [str(i) for i in err.value.issues][0].startswith(message)


def test_decoupled_decay_and_new_keys_through_set():
    config = config_from_values(default_values(), "m8_base").with_values(dict(parse_override(text) for text in (
        "L2_MODE.enabled=false", "OPTIMIZER.type=adamw", "OPTIMIZER.weight_decay=0.05", "LABEL_SMOOTHING=0.1",
        "STEP_SCHEDULE.enabled=false", "COSINE_SCHEDULE.enabled=true", "COSINE_SCHEDULE.warmup_steps=200")))
    assert (config.OPTIMIZER["type"], config.OPTIMIZER["weight_decay"], config.LABEL_SMOOTHING) == ("adamw", 0.05, 0.1)
    assert schedule_name(config.values) == "cosine" and config.COSINE_SCHEDULE["warmup_steps"] == 200
    with pytest.raises(ConfigError, match=r"LABEL_SMOOTHING: got 1.5, expected a number >= 0 and <= 1"):
        config.with_values({"LABEL_SMOOTHING": 1.5})
    with pytest.raises(ConfigError, match=r'OPTIMIZER.type: got "lamb", expected one of "sgd", "adam", "adamw"'):
        config.with_values({"OPTIMIZER.type": "lamb"})


def test_several_errors_are_listed_together():
    with pytest.raises(ConfigError) as err:
        config_from_values({"BATCH_SIZE": 0, "EPOCHS_COUNT": -1}, "cfg")
    assert {i.key for i in err.value.issues} == {"BATCH_SIZE", "EPOCHS_COUNT"}


def test_dropout_on_m8_warns_instead_of_silently_ignoring():
    config = config_from_values({"DROPOUT_MODE": {"enabled": True, "rate": 0.3}}, "m8_x")
    assert any("no dropout" in w for w in config.warnings)


def test_overrides_parse_json_values_and_nested_keys():
    assert parse_override("OPTIMIZER.learning_rate=0.05") == ("OPTIMIZER.learning_rate", 0.05)
    assert parse_override("LIGHT_MODE=true") == ("LIGHT_MODE", True)
    assert parse_override("DATA_PATH=/data/cifar") == ("DATA_PATH", "/data/cifar")
    with pytest.raises(ConfigError, match="did you mean 'BATCH_SIZE'"):
        parse_override("BATCH_SIZ=3")
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_override("BATCH_SIZE")
    config = config_from_values(default_values(), "m8_base").with_values({"OPTIMIZER.learning_rate": 0.05})
    assert config.OPTIMIZER["learning_rate"] == 0.05
    with pytest.raises(ConfigError, match="BATCH_SIZE"):
        config.with_values({"BATCH_SIZE": -5})


def test_save_refuses_to_overwrite_and_round_trips(tmp_path):
    config = config_from_values(default_values(), "m8_base").with_values({"EPOCHS_COUNT": 3})
    path = save_config(config, tmp_path / "m8_mine.json")
    assert load_config(path).values == config.values
    with pytest.raises(ConfigError, match="already exists"):
        save_config(config, path)
    assert diff_values(default_values(), config.values) == [("EPOCHS_COUNT", 200, 3)]


def test_schema_documents_every_key():
    assert len(FIELDS) == len(SCHEMA)
    for field in SCHEMA:
        assert field.help and field.group
        assert config_from_values({}, "x").get(field.key) == field.default


def test_the_key_reference_documents_every_key_from_the_schema():
    from resnet_tui.config import schema_markdown

    assert schema_markdown() in (REPO / "docs" / "config-keys.md").read_text(encoding="utf-8")


def test_input_without_bounds_is_refused_with_one_line(tmp_path):
    """What validate would choke on or pass to fail later (issue 22, item 20): not a regular file,
    a file far too big, a number of thousands of digits, brackets 100,000 deep, a NUL in a path,
    a synthetic set of a trillion images; and a key typed by another name gets that name."""
    import os

    from resnet_tui.config import ConfigError, load_config, parse_override

    def refused(path) -> str:
        with pytest.raises(ConfigError) as err:
            load_config(path)
        return str(err.value)

    if os.path.exists("/dev/zero"):
        assert "not a regular file" in refused("/dev/zero")
    fifo = tmp_path / "m8_fifo.json"
    os.mkfifo(fifo)
    assert "not a regular file" in refused(fifo)
    big = tmp_path / "m8_big.json"
    big.write_text('{"SEED": 1, "x": "' + "a" * 2_000_000 + '"}')
    assert "is not a config" in refused(big)
    digits = tmp_path / "m8_digits.json"
    digits.write_text('{"SEED": ' + "9" * 5000 + "}")
    assert "m8_digits.json: not a config: Exceeds the limit" in refused(digits)
    deep = tmp_path / "m8_deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    assert "nested too deeply" in refused(deep)
    with pytest.raises(ConfigError, match="--set SEED: Exceeds the limit"):
        parse_override("SEED=" + "9" * 5000)
    with pytest.raises(ConfigError, match="NUL character"):
        config_from_values({"LOG_PATH": "a\u0000b"}, "m8_x")
    with pytest.raises(ConfigError, match="DATASET.synthetic_train_count: got 1000000000000, expected an integer >= 1"):
        config_from_values({"DATASET": {"synthetic_train_count": 10**12}}, "m8_x")
    with pytest.raises(ConfigError, match="LEARNING_RATE: unknown key; did you mean 'OPTIMIZER.learning_rate'"):
        config_from_values({"LEARNING_RATE": 0.1}, "m8_x")
