"""Model pieces: shapes under jit, the maths of priors and likelihoods, padding exactness."""

import dataclasses

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nwb_lfads.config import ModelConfig
from nwb_lfads.errors import ConfigError
from nwb_lfads.model import noise
from nwb_lfads.model.controller import Controller
from nwb_lfads.model.decoder import decode
from nwb_lfads.model.encoder import Encoders, lag_encodings
from nwb_lfads.model.generator import Generator
from nwb_lfads.model.gru import UPDATE_BIAS, GRUPre, GRUWeights, gru_cell, gru_cell_bwd, pad_gates
from nwb_lfads.model.lfads import Batch, l2_penalty, make_lfads, readin_size
from nwb_lfads.model.likelihoods import get_likelihood, log_factorial, masked_nll, poisson_nll
from nwb_lfads.model.priors import ar1_log_density, gaussian_kl, gaussian_log_density
from nwb_lfads.model.readin import ReadIn, ReadInit, ReadOut, apply_read_init

B, T, N = 3, 20, 10
TINY = ModelConfig(
    ic_enc_dim=8,
    ci_enc_dim=6,
    ic_dim=5,
    gen_dim=12,
    con_dim=7,
    co_dim=2,
    fac_dim=4,
    dropout_rate=0.1,
)


def _batch(n_units=N, sessions=(0, 0, 0), seed=0):
    rng = np.random.default_rng(seed)
    spikes = rng.poisson(1.0, (len(sessions), T, n_units)).astype(np.float32)
    ones = jnp.ones((len(sessions), n_units))
    return Batch(jnp.asarray(spikes), jnp.asarray(sessions, jnp.int32), ones, ones)


def test_gru_update_bias_keeps_state_and_padding_stays_zero():
    f = hk.transform(lambda: GRUWeights(4, name="g")(3))
    w_i, w_h, b = f.apply(f.init(jax.random.key(0)), None)
    assert w_i.shape == (3, 12) and w_h.shape == (4, 12)
    np.testing.assert_array_equal(np.asarray(b[4:8]), UPDATE_BIAS)
    h = jnp.ones((2, 4)) * 0.5
    x = jnp.ones((2, 3))
    new = gru_cell(GRUPre.from_split(x @ w_i + b, h @ w_h), h)
    wp, whp, bp = pad_gates(w_i, 6), pad_gates(w_h, 6, rows=6), pad_gates(b, 6)
    hp = jnp.pad(h, ((0, 0), (0, 2)))
    newp = gru_cell(GRUPre.from_split(x @ wp + bp, hp @ whp), hp)
    np.testing.assert_allclose(newp[:, :4], new, rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(newp[:, 4:]), 0.0)
    # a fresh cell keeps most of its state: u ~ sigmoid(1) weights the old state
    zero = gru_cell(GRUPre.from_split(b, jnp.zeros((1, 12))), jnp.ones((1, 4)))
    np.testing.assert_allclose(zero, 1 / (1 + np.exp(-UPDATE_BIAS)), rtol=1e-6)


@pytest.mark.parametrize("clip", [0.0, 0.6])
def test_gru_cell_bwd_matches_autodiff(clip):
    rng = np.random.default_rng(2)
    pre = GRUPre(*(jnp.asarray(rng.normal(size=(3, 5)) * 2, jnp.float32) for _ in range(4)))
    h = jnp.asarray(rng.normal(size=(3, 5)), jnp.float32)
    dh_new = jnp.asarray(rng.normal(size=(3, 5)), jnp.float32)
    h_new, vjp = jax.vjp(lambda p, h: gru_cell(p, h, clip), pre, h)
    if clip > 0:
        assert np.any(np.abs(np.asarray(h_new)) >= clip)  # the clip is exercised
    want_pre, want_h = vjp(dh_new)
    got_pre, got_h = gru_cell_bwd(pre, h, dh_new, h_new, clip)
    for got, want in zip((*got_pre, got_h), (*want_pre, want_h)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("ci_dim", [0, 6])
def test_encoders_shapes_under_jit(ci_dim):
    f = hk.transform(
        lambda x: Encoders(8, ci_dim, 1, 0.1)(x, noise.seeds_from_key(jax.random.key(1), 2))
    )
    x = jnp.ones((B, T, 5))
    params = jax.jit(f.init)(jax.random.key(0), x)
    ic, ci = jax.jit(f.apply)(params, None, x)
    assert ic.shape == (B, 16)
    if ci_dim:
        assert ci.shape == (T, B, 12)  # time-major
    else:
        assert ci is None


def test_lag_encodings_shift_forward_later_backward_earlier():
    fwd = jnp.arange(5.0)[:, None, None]  # [T, B, C], time-major
    out = lag_encodings(fwd, fwd, 2)
    np.testing.assert_array_equal(np.asarray(out[:, 0, 0]), [0, 0, 0, 1, 2])
    np.testing.assert_array_equal(np.asarray(out[:, 0, 1]), [2, 3, 4, 0, 0])


@pytest.mark.parametrize("co_dim", [0, 3])
def test_decoder_shapes_and_clip(co_dim):
    def fn(g0, ci, eps):
        gen = Generator(12, 4)
        gp = gen(co_dim)
        if co_dim:
            cp = Controller(7, co_dim)(ci.shape[-1], 4)
            return decode(gp, g0, T, 0.5, con=cp, ci_enc=ci, co_eps=eps), gp.w_fac
        return decode(gp, g0, T, 0.5), gp.w_fac

    f = hk.transform(fn)
    g0, ci, eps = (
        jnp.ones((B, 12)) * 3,
        jnp.ones((T, B, 6)),
        jnp.ones((B, T, max(co_dim, 1)))[..., :co_dim],
    )
    out, w_fac = jax.jit(f.apply)(
        jax.jit(f.init)(jax.random.key(0), g0, ci, eps), None, g0, ci, eps
    )
    np.testing.assert_allclose(
        jnp.linalg.norm(w_fac, axis=0), 1.0, rtol=1e-5
    )  # unit-norm factor rows
    assert out.gen_states.shape == (T, B, 12)  # time-major
    assert float(jnp.max(jnp.abs(out.gen_states))) <= 0.5 + 1e-6
    if co_dim:
        assert out.u.shape == out.co_mean.shape == out.co_var.shape == (B, T, co_dim)
        assert float(jnp.min(out.co_var)) > 0


def test_readin_readout_gather_by_session():
    mask = np.array([[True] * 4, [True, True, False, False]])
    f = hk.transform(lambda x, f, s: (ReadIn(mask, 3)(x, s), ReadOut(mask, 2)(f, s)))
    x, fac, s = jnp.ones((2, T, 4)), jnp.ones((2, T, 2)), jnp.array([0, 1])
    params = jax.jit(f.init)(jax.random.key(0), x, fac, s)
    assert params["readin"]["w"].shape == (2, 4, 3) and params["readout"]["w"].shape == (2, 2, 4)
    np.testing.assert_array_equal(
        np.asarray(params["readin"]["w"][1, 2:]), 0.0
    )  # padded rows start at 0
    xin, out = jax.jit(f.apply)(params, None, x, fac, s)
    assert xin.shape == (2, T, 3) and out.shape == (2, T, 4)
    np.testing.assert_allclose(
        xin[1, 0], x[1, 0] @ params["readin"]["w"][1] + params["readin"]["b"][1], rtol=1e-6
    )
    init = ReadInit(readout_b=np.full((2, 4), -1.0, np.float32))
    assert float(apply_read_init(params, init)["readout"]["b"][0, 0]) == -1.0
    with pytest.raises(ConfigError, match="expected"):
        apply_read_init(params, ReadInit(readout_b=np.zeros((3, 4))))


@pytest.mark.parametrize("co_dim", [0, 2])
def test_lfads_output_shapes_and_finite_gradients(co_dim):
    cfg = dataclasses.replace(TINY, co_dim=co_dim)
    model = make_lfads(cfg, np.ones((1, N), bool))
    batch = _batch()
    params = jax.jit(model.init, static_argnums=2)(jax.random.key(0), batch, True)
    out = jax.jit(model.apply, static_argnums=3)(params, jax.random.key(1), batch, True)
    assert out.log_rates.shape == (B, T, N) and out.factors.shape == (B, T, 4)
    assert out.inferred_inputs.shape == (
        B,
        T,
        co_dim,
    ) and out.ic_mean.shape == out.ic_var.shape == (B, 5)
    for v in (out.kl_ic, out.kl_co, out.recon, out.recon_sv):
        assert v.shape == (B,)
    assert np.all(np.asarray(out.kl_ic) > 0) and np.all(np.asarray(out.recon) > 0)
    assert readin_size(cfg, 1) == 0 and "lfads/readin" not in params

    def loss(p):
        o = model.apply(p, jax.random.key(1), batch, True)
        return jnp.mean(o.recon + o.kl_ic + o.kl_co) + sum(l2_penalty(p))

    grads = jax.jit(jax.grad(loss))(params)
    flat = np.concatenate([np.ravel(g) for g in jax.tree_util.tree_leaves(grads)])
    assert np.all(np.isfinite(flat)) and np.any(flat != 0)
    gen_l2, con_l2 = l2_penalty(params)
    assert float(gen_l2) > 0 and (float(con_l2) > 0) == (co_dim > 0)


@pytest.mark.parametrize("co_dim", [0, 2])
def test_states_pass_returns_g0_and_states_without_changing_outputs(co_dim):
    """``states=True`` (inference) gives the same rates and inputs plus g0 [B, G], the
    generator states [B, T, G] (whose factor map gives the factors) and controller states."""
    cfg = dataclasses.replace(TINY, co_dim=co_dim)
    model = make_lfads(cfg, np.ones((1, N), bool))
    batch = _batch()
    params = model.init(jax.random.key(0), batch, True)
    key = jax.random.key(1)
    plain = model.apply(params, key, batch, False)
    full = model.apply(params, key, batch, False, True, True)
    assert plain.gen_states is None and plain.con_states is None
    assert plain.g0.shape == full.g0.shape == (B, 12)
    np.testing.assert_allclose(full.log_rates, plain.log_rates, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(full.inferred_inputs, plain.inferred_inputs, rtol=1e-5, atol=1e-6)
    assert full.gen_states.shape == (B, T, 12)
    assert full.con_states.shape == (B, T, 7 if co_dim else 0)
    w_fac = params["lfads/generator"]["w_fac"]
    w_fac = w_fac / jnp.sqrt(jnp.sum(w_fac**2, axis=0, keepdims=True) + 1e-8)
    np.testing.assert_allclose(full.gen_states @ w_fac, full.factors, rtol=1e-5, atol=1e-5)
    # the posterior mean pushed through: g0 is the map of ic_mean, the same on every key
    pushed = [model.apply(params, jax.random.key(k), batch, False, False) for k in (2, 3)]
    np.testing.assert_array_equal(pushed[0].g0, pushed[1].g0)
    assert not np.allclose(pushed[0].g0, plain.g0)


def test_gaussian_kl_matches_monte_carlo():
    rng = np.random.default_rng(0)
    qm, qv = rng.normal(size=4), rng.uniform(0.2, 2.0, 4)
    pm, pv = rng.normal(size=4), rng.uniform(0.1, 1.0, 4)
    x = qm + np.sqrt(qv) * rng.standard_normal((200_000, 4))
    log_q = np.sum(np.asarray(gaussian_log_density(x, qm, qv)), axis=1)
    log_p = np.sum(np.asarray(gaussian_log_density(x, pm, pv)), axis=1)
    mc, se = np.mean(log_q - log_p), np.std(log_q - log_p) / np.sqrt(len(x))
    assert float(gaussian_kl(qm, qv, pm, pv)) == pytest.approx(mc, abs=4 * se)


def test_ar1_log_density_matches_multivariate_normal():
    rng = np.random.default_rng(1)
    tau, pvar, Tn = np.array([3.0, 8.0]), np.array([0.5, 0.1]), 12
    u = rng.normal(size=(2, Tn, 2)).astype(np.float32)
    got = np.asarray(ar1_log_density(jnp.asarray(u), jnp.log(tau), jnp.log(pvar)))
    expected = np.zeros(2)
    lags = np.abs(np.subtract.outer(np.arange(Tn), np.arange(Tn)))
    for d in range(2):
        cov = pvar[d] * np.exp(-1.0 / tau[d]) ** lags
        _, logdet = np.linalg.slogdet(cov)
        for b in range(2):
            x = u[b, :, d]
            expected[b] += -0.5 * (Tn * np.log(2 * np.pi) + logdet + x @ np.linalg.solve(cov, x))
    np.testing.assert_allclose(got, expected, rtol=1e-4)


def test_log_factorial_matches_lgamma_in_and_beyond_its_table():
    import math

    k = np.array([0, 1, 2, 3, 7, 50, 500, 1022, 1023, 1024, 1025, 1500, 40_000], np.float32)
    got = np.asarray(log_factorial(jnp.asarray(k)))
    want = np.array([math.lgamma(v + 1.0) for v in k.astype(float)])
    np.testing.assert_allclose(got, want, rtol=2e-7, atol=1e-6)
    x = jnp.asarray(np.random.default_rng(0).poisson(3.0, (4, 9)).astype(np.float32))
    np.testing.assert_allclose(
        np.asarray(poisson_nll(0.3, x)),
        np.exp(0.3) - np.asarray(x) * 0.3 + np.asarray(jax.scipy.special.gammaln(x + 1.0)),
        rtol=1e-6,
    )


def test_masked_nll_ignores_masked_elements_exactly():
    lik = get_likelihood("poisson")
    out = jnp.array([[[0.5, 1000.0]]])
    x = jnp.array([[[2.0, jnp.nan]]])
    w = jnp.array([[[1.0, 0.0]]])
    val, grad = jax.value_and_grad(lambda o: masked_nll(lik, o, x, w).sum())(out)
    assert float(val) == pytest.approx(float(poisson_nll(0.5, 2.0)), rel=1e-6)
    assert float(grad[0, 0, 1]) == 0.0 and np.isfinite(float(grad[0, 0, 0]))
    with pytest.raises(ConfigError, match="unknown likelihood"):
        get_likelihood("binomial")


def test_padded_unit_changes_neither_loss_nor_gradients():
    """Two sessions (10 and 8 units); adding an 11th, padded, unit column changes nothing."""
    cfg = dataclasses.replace(TINY, readin_dim=6)
    mask = np.array([[True] * N, [True] * (N - 2) + [False] * 2])
    mask_p = np.pad(mask, ((0, 0), (0, 1)))
    batch = _batch(sessions=(0, 1, 1))
    batch = batch._replace(
        spikes=batch.spikes.at[2, :, N - 2 :].set(0.0),
        input_mask=jnp.asarray(mask[[0, 1, 1]], jnp.float32),
        loss_mask=jnp.asarray(mask[[0, 1, 1]], jnp.float32),
    )
    rng = np.random.default_rng(3)
    pad_spikes = jnp.concatenate(
        [batch.spikes, jnp.asarray(rng.poisson(2.0, (3, T, 1)), jnp.float32)], axis=2
    )
    batch_p = Batch(
        pad_spikes,
        batch.session,
        jnp.asarray(mask_p[[0, 1, 1]], jnp.float32),
        jnp.asarray(mask_p[[0, 1, 1]], jnp.float32),
    )
    model_p = make_lfads(cfg, mask_p)
    params_p = jax.jit(model_p.init, static_argnums=2)(jax.random.key(0), batch_p, False)
    params_p["lfads/readout"]["w"] = (
        params_p["lfads/readout"]["w"].at[:, :, N].set(3.0)
    )  # garbage in the pad
    params = {m: dict(v) for m, v in params_p.items()}
    params["lfads/readin"]["w"] = params_p["lfads/readin"]["w"][:, :N]
    params["lfads/readout"]["w"] = params_p["lfads/readout"]["w"][:, :, :N]
    params["lfads/readout"]["b"] = params_p["lfads/readout"]["b"][:, :N]
    model = make_lfads(cfg, mask)

    def loss(m):
        def f(p, b):
            out = m.apply(p, jax.random.key(5), b, False)
            return jnp.sum(out.recon + out.kl_ic + out.kl_co)

        return jax.jit(jax.value_and_grad(f))

    lp, gp = loss(model_p)(params_p, batch_p)
    l, g = loss(model)(params, batch)
    assert float(lp) == pytest.approx(float(l), rel=1e-6)
    assert float(jnp.max(jnp.abs(gp["lfads/readout"]["w"][:, :, N]))) == 0.0
    assert float(jnp.max(jnp.abs(gp["lfads/readin"]["w"][:, N]))) == 0.0
    g_cut = {m: dict(v) for m, v in gp.items()}
    g_cut["lfads/readin"]["w"] = gp["lfads/readin"]["w"][:, :N]
    g_cut["lfads/readout"]["w"] = gp["lfads/readout"]["w"][:, :, :N]
    g_cut["lfads/readout"]["b"] = gp["lfads/readout"]["b"][:, :N]
    for a, b in zip(jax.tree_util.tree_leaves(g_cut), jax.tree_util.tree_leaves(g)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_noise_statistics_and_determinism():
    seeds = noise.seeds_from_key(jax.random.key(0), 3)
    assert len(set(np.asarray(seeds).tolist())) == 3
    u = np.asarray(noise.uniform(seeds[0], (200_000,)))
    assert 0 < u.min() and u.max() < 1 and abs(u.mean() - 0.5) < 0.005
    z = np.asarray(noise.normal(seeds[1], (200_000,)))
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1) < 0.01
    keep = np.asarray(noise.keep_mask(seeds[2], 0.3, (100_000,)))
    assert abs(keep.mean() - 0.7) < 0.01
    # masks of 2-D+ shapes are drawn row by row in a loop: the same bits, trial axis first or not
    threshold = np.uint32(int(0.3 * 2**32))
    for shape, axis in (((40, 25, 10), 0), ((40, 25, 10), 1), ((40, 25), 1)):
        rows = np.asarray(noise.keep_mask(seeds[2], 0.3, shape, axis))
        np.testing.assert_array_equal(
            rows, np.asarray(noise.random_bits(seeds[2], shape, axis)) >= threshold
        )
        assert abs(rows.mean() - 0.7) < 4 * np.sqrt(0.21 / rows.size)  # 4 standard errors
    np.testing.assert_array_equal(
        np.asarray(noise.normal(seeds[1], (50,))), z[:50]
    )  # a pure function of seed, index
    assert not np.array_equal(
        np.asarray(noise.normal(seeds[0], (50,))), np.asarray(noise.normal(seeds[1], (50,)))
    )
    x = jnp.ones((1000,))
    d = np.asarray(noise.dropout(seeds[0], 0.5, x))
    assert set(np.unique(d)) == {0.0, 2.0}


@pytest.mark.parametrize("need_dx", [False, True])
def test_gru_layer_custom_gradient_matches_autodiff(need_dx):
    from nwb_lfads.model.rnn import _forward, gru_layer

    rng = np.random.default_rng(0)
    Tn, D, Bn, I, K, H = 6, 2, 3, 5, 4, 4
    x = jnp.asarray(rng.normal(size=(Tn, D, Bn, I)), jnp.float32)
    w_i, w_h = (
        jnp.asarray(rng.normal(size=s) * 0.5, jnp.float32) for s in ((K, I, 3 * H), (K, H, 3 * H))
    )
    b = jnp.asarray(rng.normal(size=(K, 3 * H)), jnp.float32)
    g = jnp.asarray(rng.normal(size=(Tn, K, Bn, H)), jnp.float32)
    custom = jax.grad(lambda *a: jnp.sum(gru_layer(*a, need_dx) * g), argnums=(0, 1, 2, 3))(
        x, w_i, w_h, b
    )
    auto = jax.grad(lambda *a: jnp.sum(_forward(*a) * g), argnums=(0, 1, 2, 3))(x, w_i, w_h, b)
    np.testing.assert_allclose(gru_layer(x, w_i, w_h, b), _forward(x, w_i, w_h, b), rtol=1e-6)
    for got, want in zip(custom[1:], auto[1:]):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    if need_dx:
        np.testing.assert_allclose(custom[0], auto[0], rtol=1e-4, atol=1e-5)
    else:
        assert float(jnp.max(jnp.abs(custom[0]))) == 0.0


@pytest.mark.parametrize("clip", [0.0, 1.5])
def test_gru_autonomous_custom_gradient_matches_autodiff(clip):
    from nwb_lfads.model.rnn import _autonomous_forward, gru_autonomous

    rng = np.random.default_rng(1)
    h0 = jnp.asarray(rng.normal(size=(3, 4)) * 2, jnp.float32)
    w_h = jnp.asarray(rng.normal(size=(4, 12)), jnp.float32)
    b = jnp.asarray(rng.normal(size=12), jnp.float32)
    g = jnp.asarray(rng.normal(size=(8, 3, 4)), jnp.float32)
    custom = jax.grad(lambda *a: jnp.sum(gru_autonomous(*a, 8, clip) * g), argnums=(0, 1, 2))(
        h0, w_h, b
    )
    auto = jax.grad(lambda *a: jnp.sum(_autonomous_forward(*a, 8, clip) * g), argnums=(0, 1, 2))(
        h0, w_h, b
    )
    for got, want in zip(custom, auto):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("clip", [0.0, 1.2])
def test_control_loop_custom_gradient_matches_autodiff(clip):
    from nwb_lfads.model.control_loop import _forward, control_loop

    rng = np.random.default_rng(0)
    Tn, Bn, G, K, U = 6, 3, 5, 4, 2

    def r(*shape, scale=0.5):
        return jnp.asarray(rng.normal(size=shape) * scale, jnp.float32)

    I2 = 3
    params = (r(I2 + G + K, 4 * K), r(4 * K), r(K, 2 * U), r(2 * U), r(U + G, 4 * G), r(4 * G))
    g0, ci, eps = r(Bn, G, scale=2.0), r(Tn, Bn, I2), r(Tn, Bn, U, scale=1.0)
    keep = jnp.asarray(rng.uniform(0.5, 1.5, (Tn, Bn, G)), jnp.float32)
    cots = [r(Tn, Bn, G), r(Tn, Bn, U), r(Tn, Bn, U), r(Tn, Bn, U)]

    def custom(p, g, c):
        return sum(
            jnp.sum(o * w) for o, w in zip(control_loop(p, g, c, eps, keep, clip, 1e-2), cots)
        )

    def auto(p, g, c):
        return sum(
            jnp.sum(o * w) for o, w in zip(_forward(p, g, c, eps, keep, clip, 1e-2)[2:], cots)
        )

    assert float(custom(params, g0, ci)) == pytest.approx(float(auto(params, g0, ci)), rel=1e-6)
    got = jax.grad(custom, argnums=(0, 1, 2))(params, g0, ci)
    want = jax.grad(auto, argnums=(0, 1, 2))(params, g0, ci)
    for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_spike_jitter_moves_counts_at_most_width_bins_and_keeps_totals():
    seed = noise.seeds_from_key(jax.random.key(3), 1)[0]
    Bj, Tj, Nj, w = 400, 30, 5, 2
    rng = np.random.default_rng(0)
    where = rng.integers(0, Tj, (Bj, Nj))  # one count per trial and unit
    x = np.zeros((Bj, Tj, Nj), np.float32)
    x[np.arange(Bj)[:, None], where, np.arange(Nj)[None, :]] = rng.integers(1, 4, (Bj, Nj))
    y = np.asarray(jax.jit(noise.jitter_in_time, static_argnums=1)(seed, w, jnp.asarray(x)))
    np.testing.assert_array_equal(y.sum(axis=1), x.sum(axis=1))  # nothing lost or made
    assert ((y > 0).sum(axis=1) == 1).all()  # the count moved whole
    moved_to = y.argmax(axis=1)
    offset = moved_to - where
    assert np.abs(offset).max() <= w
    inner = (where >= w) & (where < Tj - w)  # every offset allowed
    freq = np.bincount(offset[inner] + w, minlength=2 * w + 1) / inner.sum()
    np.testing.assert_allclose(freq, 1.0 / (2 * w + 1), atol=0.03)  # uniform over -w..w
    at_edge = where == 0
    assert (offset[at_edge] >= 0).all() and (
        offset[at_edge] == 0
    ).mean() > 0.3  # blocked moves stay
    np.testing.assert_array_equal(np.asarray(noise.jitter_in_time(seed, 0, jnp.asarray(x))), x)
    np.testing.assert_array_equal(
        np.asarray(noise.jitter_in_time(seed, w, jnp.asarray(x))), y
    )  # seeded


def test_spike_jitter_applies_to_training_passes_only_and_is_checked():
    from nwb_lfads.config import check_against_data

    batch = _batch()
    plain = make_lfads(dataclasses.replace(TINY, dropout_rate=0.0), np.ones((1, N), bool))
    jit = make_lfads(
        dataclasses.replace(TINY, dropout_rate=0.0, jitter_width=2), np.ones((1, N), bool)
    )
    params = plain.init(jax.random.key(0), batch, True)
    rng = jax.random.key(1)

    def same(a, b):
        return np.allclose(np.asarray(a.recon), np.asarray(b.recon))

    assert not same(plain.apply(params, rng, batch, True), jit.apply(params, rng, batch, True))
    assert same(plain.apply(params, rng, batch, False), jit.apply(params, rng, batch, False))
    check_against_data(dataclasses.replace(TINY, jitter_width=9), n_bins=20, n_sessions=1)
    for bad, field in (
        (dict(jitter_width=10), "1 to 9 bins"),
        (dict(jitter_width=-1), "jitter_width=-1: expected a value >= 0"),
        (dict(jitter_width=1, likelihood="gaussian"), "likelihood=poisson"),
        (dict(jitter_width=1, sv_rate=0.1), "sample validation"),
    ):
        with pytest.raises(ConfigError, match=field):
            check_against_data(dataclasses.replace(TINY, **bad), n_bins=20, n_sessions=1)
