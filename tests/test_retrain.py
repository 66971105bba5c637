"""retrain's decisions (parity gate, not worse than the deployed model, then deploy), the local model check,
and inventory parsing."""

import json
from pathlib import Path

import pytest
from helpers import synthetic
from helpers.model_variants import padded_model

from emotion_edge.device.config.schema import ConfigError
from emotion_edge.device.model.metadata import packaged_model_path
from emotion_edge.systemd.deploy import DeployError, check_model
from emotion_edge.systemd.inventory import DEFAULT_RELOAD, load_inventory, parse_host_spec
from emotion_edge.systemd.retrain import Candidate, Stages, not_worse, run_retrain


def test_not_worse_gate():
    assert not_worse(0.64, 0.63) is None
    assert not_worse(0.63, 0.63) is None
    assert not_worse(0.64, None) is None, "nothing deployed yet: any gated model may go"
    refusal = not_worse(0.62, 0.6311)
    assert refusal and "62.00%" in refusal and "63.11%" in refusal and "keeping the deployed model" in refusal
    assert not_worse(0.625, 0.63, tolerance_points=0.6) is None
    assert not_worse(None, 0.63) is not None


class Recorder:
    def __init__(self, gate_failures=(), accuracy=0.65, baseline=0.63, deploy_code=0):
        self.calls: list[str] = []
        self.gate_failures, self.accuracy, self.baseline, self.deploy_code = gate_failures, accuracy, baseline, deploy_code

    def stages(self) -> Stages:
        def record(name, value=None):
            def call(*args):
                self.calls.append(name)
                return value
            return call

        return Stages(train=record("train"),
                      quantize=record("quantize", Candidate(Path("new.tflite"), tuple(self.gate_failures), self.accuracy)),
                      baseline_accuracy=record("baseline", self.baseline),
                      deploy=record("deploy", self.deploy_code))


@pytest.mark.parametrize(
    "recorder, code, calls, reason",
    [
        (Recorder(), 0, ["train", "quantize", "baseline", "deploy"], "deployed; 65.00% on PublicTest vs deployed 63.00%"),
        (Recorder(gate_failures=["test: int8 loses 2.00 points (limit 1.00)"]), 1, ["train", "quantize"],
         "parity gate failed: test: int8 loses 2.00 points"),
        (Recorder(accuracy=0.60), 1, ["train", "quantize", "baseline"], "the new model scores 60.00%"),
        (Recorder(deploy_code=1), 1, ["train", "quantize", "baseline", "deploy"], "deploy failed"),
    ],
    ids=["better-deploys", "parity-gate-stops", "worse-stops", "deploy-fails"],
)
def test_retrain_chain_stops_at_the_first_failing_gate(recorder, code, calls, reason):
    outcome = run_retrain(recorder.stages())
    assert (outcome.exit_code, recorder.calls) == (code, calls)
    assert reason in outcome.reason


def test_retrain_no_deploy_stops_after_the_gates():
    recorder = Recorder()
    outcome = run_retrain(recorder.stages(), deploy=False)
    assert outcome.exit_code == 0 and "deploy" not in recorder.calls and "--no-deploy" in outcome.reason


def test_check_model_accepts_the_shipped_model_and_refuses_a_rejected_or_broken_one(tmp_path):
    package = check_model(packaged_model_path())
    assert package.payload == package.sidecar + package.model and len(package.sha256) == 64

    rejected = padded_model(tmp_path, "rejected")
    meta = json.loads(rejected.with_suffix(".json").read_text())
    meta["metrics"]["gate_passed"] = False
    rejected.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(DeployError, match="failed its parity gate"):
        check_model(rejected)

    truncated = tmp_path / "truncated.tflite"
    truncated.write_bytes(packaged_model_path().read_bytes()[:4000])
    truncated.with_suffix(".json").write_text(packaged_model_path().with_suffix(".json").read_text())
    with pytest.raises(DeployError, match="model check: .*truncated.tflite"):
        check_model(truncated)


def test_inventory_with_defaults_and_strict_keys(tmp_path):
    inventory = tmp_path / "fleet.toml"
    inventory.write_text('[defaults]\nuser = "pi"\nidentity_file = "~/.ssh/ee"\n'
                         '[[hosts]]\naddress = "hall.local"\n[[hosts]]\naddress = "kitchen.local"\nport = 2222\n'
                         'reload_command = ""\n')
    hall, kitchen = load_inventory(inventory)
    assert (hall.destination, hall.port, hall.reload_command) == ("pi@hall.local", 22, DEFAULT_RELOAD)
    assert (kitchen.label, kitchen.reload_command) == ("pi@kitchen.local:2222", "")
    assert str(hall.identity_file).endswith(".ssh/ee") and "~" not in str(hall.identity_file)

    inventory.write_text('[[hosts]]\naddress = "hall.local"\nprot = 22\n')
    with pytest.raises(ConfigError, match=r"fleet.toml.hosts\[0\]: unknown key\(s\) prot"):
        load_inventory(inventory)
    inventory.write_text('[[hosts]]\naddress = "a"\n[[hosts]]\naddress = "a"\n')
    with pytest.raises(ConfigError, match="listed twice: a:22"):
        load_inventory(inventory)


def test_host_specs():
    host = parse_host_spec("pi@10.0.0.7:2200", reload_command="")
    assert (host.user, host.address, host.port, host.reload_command) == ("pi", "10.0.0.7", 2200, "")
    assert parse_host_spec("[fe80::1]:22").address == "fe80::1"
    with pytest.raises(ConfigError, match="expected \\[user@\\]host\\[:port\\]"):
        parse_host_spec("pi@host:port")


def test_parity_sample_refuses_a_model_that_misses_its_recorded_accuracy(fer_csv):
    """On synthetic squares the shipped FER model is near chance, far below the accuracy its contract records."""
    recorded = json.loads(packaged_model_path().with_suffix(".json").read_text())["metrics"]["int8_accuracy"]["test"]
    with pytest.raises(DeployError, match=rf"on a 42-face PrivateTest sample, but its contract records {recorded:.2%}"):
        check_model(packaged_model_path(), data=str(fer_csv))


def test_retrain_compares_models_on_publictest_never_privatetest(tmp_path, monkeypatch):
    """Keeping one model over another is a choice, so it is made on PublicTest; PrivateTest is only reported."""
    from types import SimpleNamespace

    import emotion_edge.quantize as quantize_package
    from emotion_edge.device.model.classifier import EmotionClassifier
    from emotion_edge.systemd.deploy import split_accuracy
    from emotion_edge.systemd.retrain import accuracy_on_public_test, quantize_candidate

    data = synthetic.write_csv(tmp_path / "fer.csv", synthetic.records(per_split={"Training": 1, "PublicTest": 3,
                                                                                   "PrivateTest": 5}))
    classifier = EmotionClassifier(packaged_model_path())
    public, faces = split_accuracy(classifier, str(data), "val")
    assert faces == 7 * 3 and split_accuracy(classifier, str(data), "test")[1] == 7 * 5
    assert accuracy_on_public_test(packaged_model_path(), str(data)) == public

    parity = [SimpleNamespace(split="val", int8_accuracy=0.61), SimpleNamespace(split="test", int8_accuracy=0.72)]
    monkeypatch.setattr(quantize_package, "quantize", lambda *args: SimpleNamespace(
        model_path=Path("new.tflite"), failures=[], parity=parity))
    assert quantize_candidate(Path("run"), Path("new.tflite"), None).public_test_accuracy == 0.61
