"""Principal-component-regression initialisation of stitched read-ins (nwb_lfads.stitching)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from helpers import make_session

from nwb_lfads.baselines import smooth_spikes
from nwb_lfads.errors import (
    ConfigError,
    SelectionError,
    SessionMismatchError,
    StitchingInputError,
    StitchingWarning,
)
from nwb_lfads.stitching import (
    MEAN_COUNT_FLOOR,
    ReadinInit,
    pcr_readin,
    stack_padded,
)
from nwb_lfads.synthetic import generate_sessions

BIN = 0.01


@pytest.fixture(scope="module")
def chaotic():
    """Three sessions of one chaotic RNN, 8 conditions, 20/30/40 units, 10 trials each."""
    return generate_sessions(
        "chaotic",
        sessions=3,
        seed=3,
        n_conditions=8,
        trials_per_condition=10,
        n_units=[20, 30, 40],
        bin_size=BIN,
    )


def low_rank_sessions(seed=0, units=(10, 25, 40), k=3, n_cond=8, n_bins=60, reps=100):
    """Poisson sessions whose rates (per bin) are affine in one shared k-D latent z [C, T, k].

    Returns z and, per session, (spikes [K, T, N], condition ids [K], loadings A [k, N]).
    """
    rng = np.random.default_rng(seed)
    t = np.arange(n_bins) * BIN
    freq = rng.uniform(0.5, 2.0, (n_cond, 1, k))
    phase = rng.uniform(0, 2 * np.pi, (n_cond, 1, k))
    z = np.sin(2 * np.pi * freq * t[None, :, None] + phase)
    sessions = []
    for n in units:
        a = 0.08 * rng.standard_normal((k, n))
        rates = np.clip(rng.uniform(0.3, 0.5, n) + z @ a, 0.005, None)
        cond = rng.permutation(np.repeat(np.arange(n_cond), reps))
        sessions.append((rng.poisson(rates[cond]), cond, a))
    return z, sessions


def condition_means(x, cond, n_cond, sigma_s=0.05):
    """Smoothed condition averages of x [K, T, N] flattened to [C * T, N]."""
    avg = np.stack([x[cond == c].mean(axis=0) for c in range(n_cond)])
    return smooth_spikes(avg, BIN, sigma_s).reshape(-1, x.shape[2])


def r2(pred, target):
    return 1.0 - np.sum((pred - target) ** 2) / np.sum((target - target.mean(axis=0)) ** 2)


def max_angle_deg(a, b):
    """Largest principal angle between the column spaces of a and b (degrees)."""
    qa, _ = np.linalg.qr(a)
    qb, _ = np.linalg.qr(b)
    cos = np.linalg.svd(qa.T @ qb, compute_uv=False)
    return float(np.degrees(np.arccos(np.clip(cos.min(), -1.0, 1.0))))


# ---------------------------------------------------------------- stitching quality


def test_sessions_map_true_condition_rates_onto_the_same_trajectories(chaotic):
    # three components stand clearly above the Poisson noise of 10 trials per condition here
    # (explained variance 0.27, 0.23, 0.04, then 0.03 and below); weaker ones agree less.
    d = 3
    init = pcr_readin(
        [s.spikes for s in chaotic], d, BIN, conditions_list=[s.condition_id for s in chaotic]
    )
    assert init.samples == "conditions"
    # noise-free condition-averaged rates (spikes per bin) of each session, through its read-in
    true = [condition_means(s.rates_hz * BIN, s.condition_id, 8) for s in chaotic]
    proj = [x @ w + b for x, w, b in zip(true, init.readin_w, init.readin_b)]
    rng = np.random.default_rng(0)
    rand = [x @ rng.standard_normal((x.shape[1], d)) / np.sqrt(x.shape[1]) for x in true]
    rand = [(p - p.mean(0)) / p.std(0) for p in rand]  # same scaling as the PCR read-in outputs
    pairs = [(a, b) for a in range(3) for b in range(3) if a != b]
    pcr_r2 = [r2(proj[a], proj[b]) for a, b in pairs]
    rand_r2 = [r2(rand[a], rand[b]) for a, b in pairs]
    print("PCR pairwise R^2", np.round(pcr_r2, 3), "random", np.round(rand_r2, 3))
    assert min(pcr_r2) > 0.8
    assert max(rand_r2) < 0.3


def test_read_in_outputs_have_unit_variance_on_the_samples_without_trial_scaling(chaotic):
    init = pcr_readin(
        [s.spikes for s in chaotic],
        6,
        BIN,
        trial_sd=None,
        conditions_list=[s.condition_id for s in chaotic],
    )
    for s, w, b in zip(chaotic, init.readin_w, init.readin_b):
        out = condition_means(s.spikes, s.condition_id, 8) @ w + b  # the fitting samples
        np.testing.assert_allclose(out.var(axis=0), 1.0, rtol=1e-6)
        np.testing.assert_allclose(out.mean(axis=0), 0.0, atol=1e-8)


def test_read_in_outputs_on_single_trials_have_unit_rms_sd_and_sessions_stay_aligned(chaotic):
    # scaled to unit variance on averaged samples, the weak components' outputs on raw
    # single-trial counts had sds of 5-60 and a stitched fit did worse than a session alone
    spikes, conds = [s.spikes for s in chaotic], [s.condition_id for s in chaotic]
    raw = pcr_readin(spikes, 6, BIN, trial_sd=None, conditions_list=conds)
    init = pcr_readin(spikes, 6, BIN, conditions_list=conds)
    trial_sd = np.stack(
        [
            (s.spikes.reshape(-1, s.spikes.shape[2]) @ w).std(axis=0)
            for s, w in zip(chaotic, init.readin_w)
        ]
    )  # [S, D]
    np.testing.assert_allclose(np.sqrt(np.mean(trial_sd**2, axis=0)), 1.0, rtol=1e-6)
    before = np.stack(
        [
            (s.spikes.reshape(-1, s.spikes.shape[2]) @ w).std(axis=0)
            for s, w in zip(chaotic, raw.readin_w)
        ]
    )
    assert before.max() > 2.0  # what the scaling corrects
    factor = init.readin_w[0] / raw.readin_w[0]  # one factor per component ...
    for w, w0, b, b0, s in zip(init.readin_w, raw.readin_w, init.readin_b, raw.readin_b, chaotic):
        np.testing.assert_allclose(w, w0 * factor[0], rtol=1e-9)  # ... the same in every session
        np.testing.assert_allclose(b, b0 * factor[0], rtol=1e-9, atol=1e-12)
        out = condition_means(s.spikes, s.condition_id, 8) @ w + b
        np.testing.assert_allclose(
            out.var(axis=0), factor[0] ** 2, rtol=1e-6
        )  # equal across sessions
        np.testing.assert_allclose(out.mean(axis=0), 0.0, atol=1e-8)


def test_trial_sd_must_be_positive(chaotic):
    with pytest.raises(ConfigError, match=r"trial_sd=0.*finite number > 0.*or None"):
        pcr_readin([s.spikes for s in chaotic], 3, BIN, trial_sd=0)


@pytest.mark.parametrize("d", [3, 5])
def test_shared_components_recover_the_latent_subspace(d):
    z, sessions = low_rank_sessions()
    init = pcr_readin(
        [sp for sp, _, _ in sessions],
        d,
        BIN,
        conditions_list=[c for _, c, _ in sessions],
        sigma_s=0.03,
    )
    evr = init.explained_variance_ratio
    assert evr[:3].sum() > 0.8 and np.all(evr[3:] < 0.02)  # three real components, noise after
    zc = (z - z.mean(axis=(0, 1))).reshape(-1, 3)
    rng = np.random.default_rng(1)
    for (sp, c, a), w, b, w_out in zip(sessions, init.readin_w, init.readin_b, init.readout_w):
        out = condition_means(sp, c, 8, 0.03) @ w + b  # [C*T, d]
        sample_angle = max_angle_deg(out[:, :3] - out[:, :3].mean(0), zc)
        unit_angle = max_angle_deg(w_out[:3].T, a.T)  # read-out rows vs loadings
        random_angle = max_angle_deg(rng.standard_normal((a.shape[1], 3)), a.T)
        print(
            f"N={a.shape[1]} d={d}: samples {sample_angle:.1f} deg, loadings {unit_angle:.1f} "
            f"deg, random loadings {random_angle:.1f} deg"
        )
        assert sample_angle < 15.0
        assert unit_angle < 15.0
        assert random_angle > 45.0


# ---------------------------------------------------------------- read-out


def test_read_out_is_the_pseudo_inverse_with_log_mean_rate_bias(chaotic):
    init = pcr_readin(
        [s.spikes for s in chaotic], 4, BIN, conditions_list=[s.condition_id for s in chaotic]
    )
    for s, w, w_out, w_log, b_out in zip(
        chaotic, init.readin_w, init.readout_w, init.readout_w_log, init.readout_b
    ):
        n = s.spikes.shape[2]
        assert w.shape == (n, 4) and w_out.shape == (4, n) and b_out.shape == (n,)
        np.testing.assert_allclose(w_out @ w, np.eye(4), atol=1e-8)  # left inverse
        mean = s.spikes.mean(axis=(0, 1))
        np.testing.assert_allclose(b_out, np.log(np.maximum(mean, MEAN_COUNT_FLOOR)))
        np.testing.assert_allclose(w_log, w_out / np.maximum(mean, MEAN_COUNT_FLOOR))


# ---------------------------------------------------------------- padding, silent units, EVR


def test_stack_padded_is_exact_with_zeros_beyond_each_session(chaotic):
    init = pcr_readin(
        [s.spikes for s in chaotic], 4, BIN, conditions_list=[s.condition_id for s in chaotic]
    )
    out = stack_padded(init, 45)
    assert {k: v.shape for k, v in out.items()} == {
        "readin_w": (3, 45, 4),
        "readin_b": (3, 4),
        "readout_w": (3, 4, 45),
        "readout_b": (3, 45),
    }
    assert all(v.dtype == np.float32 for v in out.values())
    for s, n in enumerate([20, 30, 40]):
        np.testing.assert_array_equal(out["readin_w"][s, :n], init.readin_w[s].astype(np.float32))
        np.testing.assert_array_equal(
            out["readout_w"][s, :, :n], init.readout_w[s].astype(np.float32)
        )
        np.testing.assert_array_equal(out["readout_b"][s, :n], init.readout_b[s].astype(np.float32))
        np.testing.assert_array_equal(out["readin_b"][s], init.readin_b[s].astype(np.float32))
        assert not out["readin_w"][s, n:].any() and not out["readout_w"][s, :, n:].any()
        assert not out["readout_b"][s, n:].any()
    log = stack_padded(init, readout_space="log")
    assert log["readin_w"].shape == (3, 40, 4)
    np.testing.assert_array_equal(
        log["readout_w"][1, :, :30], init.readout_w_log[1].astype(np.float32)
    )
    assert not log["readout_w"][1, :, 30:].any()


def test_silent_units_give_finite_weights_and_zero_rows(chaotic):
    spikes = [s.spikes.copy() for s in chaotic]
    spikes[1][:, :, [0, 7, 29]] = 0
    init = pcr_readin(spikes, 4, BIN, conditions_list=[s.condition_id for s in chaotic])
    for field in ("readin_w", "readin_b", "readout_w", "readout_b", "readout_w_log"):
        assert all(np.all(np.isfinite(x)) for x in getattr(init, field)), field
    np.testing.assert_allclose(init.readin_w[1][[0, 7, 29]], 0.0, atol=1e-12)
    np.testing.assert_allclose(init.readout_b[1][[0, 7, 29]], np.log(MEAN_COUNT_FLOOR))
    # a session that is entirely silent still yields finite (zero) read-in weights
    spikes[2][:] = 0
    init = pcr_readin(spikes, 4, BIN, conditions_list=[s.condition_id for s in chaotic])
    assert not init.readin_w[2].any() and not init.readout_w[2].any()
    assert np.all(np.isfinite(init.readin_w[0]))


def test_explained_variance_is_sorted_and_at_most_one(chaotic):
    init = pcr_readin(
        [s.spikes for s in chaotic], 10, BIN, conditions_list=[s.condition_id for s in chaotic]
    )
    evr = init.explained_variance_ratio
    assert evr.shape == (10,) and np.all(np.diff(evr) <= 0)
    assert np.all(evr > 0) and evr.sum() <= 1.0
    print("explained variance ratio", np.round(evr, 3))


def test_too_few_units_pad_zero_components_with_a_warning():
    rng = np.random.default_rng(2)
    spikes = [rng.poisson(0.2, (12, 30, 2)), rng.poisson(0.2, (9, 30, 3))]
    with pytest.warns(StitchingWarning, match=r"only 5 of readin_dim=8 shared components"):
        init = pcr_readin(spikes, 8, BIN)
    assert init.samples == "trial_mean"
    np.testing.assert_array_equal(init.explained_variance_ratio[5:], 0.0)
    assert init.explained_variance_ratio[:5].sum() == pytest.approx(1.0)
    for w, w_out in zip(init.readin_w, init.readout_w):
        assert not w[:, 5:].any() and not w_out[5:].any()
        assert np.all(np.isfinite(w_out))


# ---------------------------------------------------------------- sample rules


def test_sample_rules_conditions_fallback_and_single_trials():
    rng = np.random.default_rng(4)
    a, b = rng.poisson(0.3, (16, 20, 6)), rng.poisson(0.3, (10, 20, 5))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        shared = pcr_readin([a, b], 3, BIN, conditions_list=[np.arange(16) % 4, np.arange(10) % 2])
    assert shared.samples == "conditions"  # ids 0 and 1 occur in both sessions
    with pytest.warns(StitchingWarning, match="no condition id occurs in every session"):
        init = pcr_readin([a, b], 3, BIN, conditions_list=[np.full(16, 1), np.full(10, 2)])
    assert init.samples == "trial_mean"
    with pytest.warns(StitchingWarning, match="no condition id occurs in every session"):
        mixed = [np.arange(16) % 2, np.array(["0", "1"] * 5)]  # ints vs strings share nothing
        assert pcr_readin([a, b], 3, BIN, conditions_list=mixed).samples == "trial_mean"
    with pytest.warns(StitchingWarning, match="missing for some sessions"):
        assert (
            pcr_readin([a, b], 3, BIN, conditions_list=[None, np.zeros(10)]).samples == "trial_mean"
        )
    # one session, 20 bins < 2 * readin_dim: its single trials are the samples, all 12 components
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        single = pcr_readin([rng.poisson(0.3, (30, 20, 15))], 12, BIN)
    assert single.samples == "trials" and np.all(single.explained_variance_ratio > 0)
    # several sessions never pair single trials: warned, padded
    with pytest.warns(StitchingWarning) as caught:
        assert pcr_readin([a, b], 12, BIN).samples == "trial_mean"
    messages = [str(w.message) for w in caught]
    assert any("gives 20 samples for readin_dim=12" in m for m in messages)
    assert any("only 11 of readin_dim=12 shared components" in m for m in messages)  # 11 units


def test_condition_ids_may_be_strings_and_partially_shared():
    rng = np.random.default_rng(5)
    a, b = rng.poisson(0.3, (12, 25, 4)), rng.poisson(0.3, (9, 25, 6))
    ca = np.array(["up", "down", "left"] * 4)
    cb = np.array(["up", "down", "right"] * 3)
    init = pcr_readin([a, b], 2, BIN, conditions_list=[ca, cb])
    assert init.samples == "conditions" and isinstance(init, ReadinInit)
    # only "down" and "up" are shared: dropping "left"/"right" trials changes nothing but the
    # single-trial scale (step (b) measures every trial the read-in will meet)
    keep_a, keep_b = ca != "left", cb != "right"
    full = pcr_readin([a, b], 2, BIN, conditions_list=[ca, cb], trial_sd=None)
    sub = pcr_readin(
        [a[keep_a], b[keep_b]], 2, BIN, conditions_list=[ca[keep_a], cb[keep_b]], trial_sd=None
    )
    for x, y in zip(full.readin_w, sub.readin_w):
        np.testing.assert_allclose(x, y)


# ---------------------------------------------------------------- errors


def test_errors_name_the_problem_and_the_fix():
    ok = np.zeros((4, 10, 3), np.int64)
    with pytest.raises(SessionMismatchError, match=r"different numbers of time bins \[10, 12\]"):
        pcr_readin([ok, np.zeros((4, 12, 3), np.int64)], 2, BIN)
    with pytest.raises(SelectionError, match=r"session 1 is empty .*\(0, 10, 3\)"):
        pcr_readin([ok, np.zeros((0, 10, 3))], 2, BIN)
    with pytest.raises(SelectionError, match="session 0 is empty"):
        pcr_readin([np.zeros((4, 10, 0))], 2, BIN)
    with pytest.raises(ConfigError, match=r"readin_dim=0 must be an integer >= 1"):
        pcr_readin([ok], 0, BIN)
    with pytest.raises(ConfigError, match=r"readin_dim=2.5 must be an integer"):
        pcr_readin([ok], 2.5, BIN)
    with pytest.raises(ConfigError, match=r"bin_size=0 must be a finite number > 0"):
        pcr_readin([ok], 2, 0)
    with pytest.raises(ConfigError, match=r"sigma_s=-0.1 must be a finite number >= 0"):
        pcr_readin([ok], 2, BIN, sigma_s=-0.1)
    with pytest.raises(ConfigError, match=r"ridge=0 must be a finite number > 0"):
        pcr_readin([ok], 2, BIN, ridge=0)
    with pytest.raises(StitchingInputError, match="non-empty list"):
        pcr_readin([], 2, BIN)
    with pytest.raises(StitchingInputError, match=r"session 0 spikes have shape \(10, 3\)"):
        pcr_readin([np.zeros((10, 3))], 2, BIN)
    with pytest.raises(StitchingInputError, match="session 0 spikes hold negative values"):
        pcr_readin([ok - 1], 2, BIN)
    with pytest.raises(StitchingInputError, match="session 0 spikes hold NaN"):
        pcr_readin([np.full((4, 10, 3), np.nan)], 2, BIN)
    with pytest.raises(StitchingInputError, match=r"one entry per session \(2\)"):
        pcr_readin([ok, ok], 2, BIN, conditions_list=[np.zeros(4)])
    with pytest.raises(
        StitchingInputError, match=r"session 1 condition ids have shape \(3,\) .* 4 trials"
    ):
        pcr_readin([ok, ok], 2, BIN, conditions_list=[np.zeros(4), np.zeros(3)])


def test_stack_padded_errors(chaotic):
    init = pcr_readin([s.spikes for s in chaotic], 2, BIN)
    with pytest.raises(
        ConfigError, match=r"n_max=39 is smaller than the largest session \(40 units"
    ):
        stack_padded(init, 39)
    with pytest.raises(ConfigError, match="readout_space='hz'"):
        stack_padded(init, readout_space="hz")


def test_trainer_starts_stitched_poisson_fits_from_pcr_and_others_from_random_readins():
    """Several Poisson sessions: by default (``auto``) and with ``pcr`` the read-in starts
    exactly at the PCR read-in and the read-out stays random with the log-mean-rate bias (it
    beat random read-ins on the stitching benchmark, docs/DESIGN.md); ``random`` and the
    Gaussian likelihood keep random read-ins; a PCR start passed as ``readin_init`` (read-in
    and read-out) is put in place exactly."""
    import jax

    from nwb_lfads.config import RunConfig
    from nwb_lfads.data import prepare_data
    from nwb_lfads.model.readin import ReadInit
    from nwb_lfads.stitching import readin_init_from_data
    from nwb_lfads.train.trainer import Trainer

    cfg = RunConfig().replace(
        model=dict(ic_enc_dim=4, ci_enc_dim=4, ic_dim=4, gen_dim=8, con_dim=4, co_dim=1, fac_dim=3),
        train=dict(batch_size=8, n_samples=1),
    )
    sessions = generate_sessions(
        "chaotic",
        sessions=2,
        seed=1,
        n_conditions=4,
        trials_per_condition=4,
        n_units=[6, 9],
        n_bins=20,
    )
    datasets = [
        make_session(
            f"s{i}",
            spikes=sess.spikes,
            conditions=None,
            heldout=np.arange(sess.spikes.shape[2]) == sess.spikes.shape[2] - 1,
        )
        for i, sess in enumerate(sessions)
    ]
    data = prepare_data(datasets, cfg.data)
    expected = readin_init_from_data(data, 3, fac_dim=3)
    assert expected["readin_w"].shape == (2, 9, 3) and expected["readout_w"].shape == (2, 3, 9)
    assert np.all(expected["readin_w"][0, 5:] == 0)  # held-out unit 5 and padding of session 0
    assert np.all(expected["readin_w"][1, 8] == 0) and np.any(expected["readin_w"][1, :8] != 0)

    def leaf(params, module, name):
        leaves = {
            "/".join(str(getattr(k, "key", k)) for k in path): np.asarray(v)
            for path, v in jax.tree_util.tree_flatten_with_path(params)[0]
        }
        found = [v for k, v in leaves.items() if module in k and k.endswith(name)]
        assert len(found) == 1
        return found[0]

    default = Trainer(data, cfg.with_overrides(["model.readin_init=random"])).params
    assert not np.allclose(leaf(default, "readin", "w"), expected["readin_w"], atol=1e-3)
    gaussian = Trainer(data, cfg.with_overrides(["model.likelihood=gaussian"])).params
    assert not np.allclose(leaf(gaussian, "readin", "w"), expected["readin_w"], atol=1e-3)
    np.testing.assert_allclose(
        leaf(default, "readout", "b")[1, :9],
        np.log(np.maximum(data.unit_means[1, :9], 1e-3)),
        rtol=1e-6,
    )
    pcr = Trainer(data, cfg, readin_init=ReadInit(**expected)).params
    np.testing.assert_allclose(leaf(pcr, "readin", "w"), expected["readin_w"], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(
        leaf(pcr, "readout", "w"), expected["readout_w"], rtol=1e-6, atol=1e-7
    )
    for overrides in (["model.readin_init=pcr"], []):  # from the config, and by default
        by_config = Trainer(data, cfg.with_overrides(overrides)).params
        np.testing.assert_allclose(
            leaf(by_config, "readin", "w"), expected["readin_w"], rtol=1e-6, atol=1e-7
        )
        np.testing.assert_array_equal(
            leaf(by_config, "readout", "w"), leaf(default, "readout", "w")
        )
        np.testing.assert_allclose(
            leaf(by_config, "readout", "b"), leaf(default, "readout", "b"), rtol=1e-6
        )
    with pytest.raises(
        ConfigError, match=r"model.readin_init='ica': expected auto or random or pcr"
    ):
        Trainer(data, cfg.with_overrides(["model.readin_init=ica"]))
