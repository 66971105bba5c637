import numpy as np
import pytest

from emotion_edge.device.smoothing import EmotionSmoother, SmootherConfig

HAPPY = np.array([0.1, 0.8, 0.1])
SAD = np.array([0.1, 0.1, 0.8])
H, S = 1, 2  # indices into the 3-class vectors above


def test_first_update_reports_the_argmax_directly():
    state = EmotionSmoother(3).update(HAPPY)
    assert state.dominant == H and state.changed is True
    assert state.confidence == pytest.approx(0.8)
    np.testing.assert_allclose(state.probabilities, HAPPY)


def test_ema_math():
    smoother = EmotionSmoother(3, SmootherConfig(alpha=0.4))
    smoother.update(np.array([0.7, 0.2, 0.1]))
    state = smoother.update(np.array([0.1, 0.2, 0.7]))
    # 0.4 * newest + 0.6 * previous
    np.testing.assert_allclose(state.probabilities, [0.46, 0.20, 0.34])
    state = smoother.update(np.array([0.1, 0.2, 0.7]))
    np.testing.assert_allclose(state.probabilities, [0.316, 0.20, 0.484])
    assert state.probabilities.sum() == pytest.approx(1.0)


def test_slightly_unnormalized_input_is_renormalized():
    # Dequantized int8 softmax outputs rarely sum to exactly 1.
    state = EmotionSmoother(3).update(np.array([0.1, 0.78, 0.1]))
    assert state.probabilities.sum() == pytest.approx(1.0)
    assert state.confidence == pytest.approx(0.78 / 0.98)


def test_a_single_noisy_frame_does_not_flip_the_emotion():
    smoother = EmotionSmoother(3)
    states = [smoother.update(p) for p in [HAPPY] * 5 + [np.array([0.025, 0.025, 0.95])] + [HAPPY] * 3]
    assert [s.dominant for s in states] == [H] * 9
    assert [s.changed for s in states] == [True] + [False] * 8


def test_hysteresis_holds_even_when_the_ema_alone_would_flip():
    smoother = EmotionSmoother(3, SmootherConfig(alpha=0.8))
    for _ in range(3):
        smoother.update(HAPPY)
    spike = smoother.update(np.array([0.025, 0.025, 0.95]))
    assert int(np.argmax(spike.probabilities)) == S  # the smoothed vector does lead with sad...
    assert spike.dominant == H and not spike.changed  # ...but for one frame only
    assert spike.confidence == pytest.approx(spike.probabilities[H])


def test_sustained_change_flips_after_min_frames():
    # With the defaults, sad's smoothed lead over happy passes 0.10 on update 3
    # (0.548 vs 0.352) and has held it for 3 updates on update 5.
    smoother = EmotionSmoother(3)
    states = [smoother.update(p) for p in [HAPPY] + [SAD] * 6]
    assert [s.dominant for s in states] == [H, H, H, H, S, S, S]
    assert [s.changed for s in states] == [True, False, False, False, True, False, False]
    assert states[4].confidence == pytest.approx(0.4 * 0.8 + 0.6 * 0.6488)


def test_min_frames_counts_consecutive_updates_of_one_challenger():
    smoother = EmotionSmoother(3, SmootherConfig(alpha=1.0, min_frames=2))
    smoother.update(np.array([0.8, 0.1, 0.1]))
    b_leads, c_leads = np.array([0.2, 0.7, 0.1]), np.array([0.2, 0.1, 0.7])
    assert smoother.update(b_leads).dominant == 0
    assert smoother.update(c_leads).dominant == 0  # a different challenger starts over
    assert smoother.update(c_leads).dominant == 2
    # A lead broken by one frame also starts over.
    assert smoother.update(b_leads).dominant == 2
    assert smoother.update(np.array([0.1, 0.1, 0.8])).dominant == 2
    assert smoother.update(b_leads).dominant == 2
    assert smoother.update(b_leads).dominant == 1


def test_switch_margin_is_respected():
    smoother = EmotionSmoother(3, SmootherConfig(alpha=1.0, switch_margin=0.2, min_frames=1))
    smoother.update(np.array([0.0, 0.6, 0.4]))
    close = np.array([0.0, 0.42, 0.58])  # sad leads by 0.16, inside the margin
    for _ in range(5):
        state = smoother.update(close)
        assert state.dominant == H and state.confidence == pytest.approx(0.42)
    state = smoother.update(np.array([0.0, 0.35, 0.65]))  # leads by 0.30
    assert state.dominant == S and state.changed


def test_states_are_snapshots():
    smoother = EmotionSmoother(3)
    first = smoother.update(HAPPY)
    smoother.update(SAD)
    np.testing.assert_allclose(first.probabilities, HAPPY)
    with pytest.raises(ValueError):
        first.probabilities[0] = 1.0
    assert smoother.state is not first and smoother.state.probabilities[S] > HAPPY[S]


@pytest.mark.parametrize(
    "probs, message",
    [
        (np.array([0.5, 0.5]), "3 classes"),
        (np.array([[0.1, 0.8, 0.1]]), "3 classes"),
        (np.array([0.1, np.nan, 0.9]), "finite"),
        (np.array([0.0, np.inf, 0.0]), "finite"),
        (np.array([-0.1, 0.6, 0.5]), "non-negative"),
        (np.array([2.0, 1.0, 0.5]), "sum to 1"),
        (np.array([0.0, 0.0, 0.0]), "sum to 1"),
    ],
)
def test_bad_input_is_rejected(probs, message):
    smoother = EmotionSmoother(3)
    smoother.update(HAPPY)
    with pytest.raises(ValueError, match=message):
        smoother.update(probs)
    np.testing.assert_allclose(smoother.state.probabilities, HAPPY)  # a rejected frame leaves no trace


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"alpha": 0.0}, "alpha"),
        ({"alpha": 1.2}, "alpha"),
        ({"alpha": float("nan")}, "alpha"),
        ({"switch_margin": -0.1}, "switch_margin"),
        ({"switch_margin": 1.0}, "switch_margin"),
        ({"min_frames": 0}, "min_frames"),
        ({"min_frames": 2.0}, "min_frames"),
    ],
)
def test_config_validation_names_the_field(kwargs, field):
    with pytest.raises(ValueError, match=f"field '{field}'"):
        SmootherConfig(**kwargs)


def test_num_classes_is_validated():
    with pytest.raises(ValueError, match="num_classes"):
        EmotionSmoother(1)
