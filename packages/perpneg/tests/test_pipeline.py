"""The Stable Diffusion Perp-Neg pipeline end to end on a tiny random model (spec §6c, §7)."""

import pytest
import torch
from diffusers import StableDiffusionPipeline

from perpneg.guidance import perpneg
from perpneg.pipeline import PaperProfile, StableDiffusionPerpNegPipeline, load_pipeline
from perpneg.sampling import SCHEDULERS, GuidanceSpec, denoise, make_scheduler
from perpneg.tiny import tiny_components, tiny_pipeline
from reprozoo.config import ConfigError

STEPS = 4


def close(a, b, tol=1e-5):
    """Equal up to float32 rounding, relative to the largest entry (guidance amplifies it)."""
    return float((a - b).abs().max()) <= tol * float(b.abs().max())


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("tok")


@pytest.fixture(scope="module")
def pipe(tok_dir):
    return tiny_pipeline(tok_dir)


def run(pipe, seed=0, **kw):
    kw.setdefault("num_inference_steps", STEPS)
    return pipe(generator=torch.Generator().manual_seed(seed), output_type="latent", **kw).images


def test_no_negatives_matches_diffusers_cfg(pipe, tok_dir):
    ref_pipe = StableDiffusionPipeline(**tiny_components(tok_dir))
    ref_pipe.set_progress_bar_config(disable=True)
    g = torch.Generator().manual_seed(0)
    ref = ref_pipe(
        "a lion", negative_prompt="", num_inference_steps=STEPS, generator=g, output_type="latent"
    ).images
    assert close(run(pipe, prompt="a lion"), ref)
    # The SD negative prompt is the sd_negative rule with one negative.
    g = torch.Generator().manual_seed(0)
    ref = ref_pipe(
        "a lion",
        negative_prompt="a cat",
        num_inference_steps=STEPS,
        generator=g,
        output_type="latent",
    ).images
    ours = run(
        pipe,
        prompt="a lion",
        negative_prompts=["a cat"],
        negative_weights=[1.0],
        method="sd_negative",
    )
    assert close(ours, ref)


def test_reductions_to_cfg_inside_pipeline(pipe):
    cfg_out = run(pipe, prompt="a lion", num_images_per_prompt=2)
    zero_w = run(
        pipe,
        prompt="a lion",
        negative_prompts=["a cat"],
        negative_weights=[0.0],
        num_images_per_prompt=2,
    )
    empty = run(
        pipe,
        prompt="a lion",
        negative_prompts=[""],
        negative_weights=[3.0],
        num_images_per_prompt=2,
    )
    same = run(
        pipe,
        prompt="a lion",
        negative_prompts=["a lion"],
        negative_weights=[3.0],
        num_images_per_prompt=2,
    )
    for out in (zero_w, empty, same):
        assert close(out, cfg_out)
    different = run(
        pipe,
        prompt="a lion",
        negative_prompts=["a cat"],
        negative_weights=[3.0],
        num_images_per_prompt=2,
    )
    assert (different - cfg_out).abs().max() > 1e-3


def test_batched_equals_sequential_and_reproducible(pipe):
    kw = dict(
        prompt="a lion",
        negative_prompts=["a cat", "the car"],
        negative_weights=[1.5, 0.5],
        extra_prompts=["a hat"],
        extra_weights=[0.3],
        num_images_per_prompt=2,
    )
    batched = run(pipe, **kw)
    sequential = run(pipe, batch_branches=False, **kw)
    assert close(batched, sequential)
    assert torch.equal(run(pipe, **kw), batched)
    assert not torch.allclose(run(pipe, seed=1, **kw), batched)


def test_matches_hand_written_official_order_loop(pipe):
    s, w = 7.5, [1.5]
    out = run(pipe, prompt="a lion", negative_prompts=["a cat"], negative_weights=w)
    enc = [pipe._embed([t], None)[0] for t in ("a lion", "a cat", "")]
    sched = make_scheduler("ddim", pipe.scheduler.config)
    sched.set_timesteps(STEPS)
    g = torch.Generator().manual_seed(0)
    x = torch.randn((1, 4, 8, 8), generator=g) * sched.init_noise_sigma
    with torch.no_grad():
        for t in sched.timesteps:
            e_pos, e_neg, e_u = (pipe.unet(x, t, encoder_hidden_states=e).sample for e in enc)
            x = sched.step(perpneg(e_u, e_pos, [e_neg], w, s), t, x).prev_sample
    assert close(out, x)


@pytest.mark.parametrize("name", sorted(SCHEDULERS))
def test_scheduler_coverage(pipe, name):
    original = pipe.scheduler
    pipe.scheduler = make_scheduler(name, original.config)
    try:
        kw = dict(prompt="a lion", negative_prompts=["a cat"], negative_weights=[1.5])
        a = run(pipe, **kw)
        b = run(pipe, batch_branches=False, **kw)
    finally:
        pipe.scheduler = original
    assert torch.isfinite(a).all() and close(a, b)


def test_v_prediction_and_views(tok_dir):
    pipe = tiny_pipeline(tok_dir, v_prediction=True)
    a = run(pipe, prompt="a lion", azimuth=0.0)
    b = run(
        pipe,
        prompt="a lion, front view",
        negative_prompts=["a lion, front view", "a lion, side view"],
        negative_weights=[0, 2],
    )
    assert close(a, b)
    assert torch.isfinite(
        run(pipe, prompt="a lion", azimuth=135.0, view_schedule="threestudio")
    ).all()


def test_mocked_denoiser_orthogonal_negative_is_composable():
    """With ε prescribed per embedding, Perp-Neg = composable NOT for an orthogonal negative."""
    torch.manual_seed(0)
    basis = torch.linalg.qr(torch.randn(16, 3))[0].T  # three orthonormal directions

    def denoiser(x, t, cond):
        return 0.1 * x + cond[:, 0, :16].reshape(-1, 1, 4, 4)

    def emb(v):
        e = torch.zeros(2, 1, 16)
        e[:, 0] = v
        return e

    u, pos, neg = emb(0 * basis[0]), emb(basis[0]), emb(basis[1])
    sched = make_scheduler("ddim", {"num_train_timesteps": 1000})
    x0 = torch.randn(2, 1, 4, 4)
    outs = {}
    for method in ("perpneg", "composable"):
        spec = GuidanceSpec(
            uncond=u, pos=pos, negs=[neg], neg_weights=[1.5], method=method, scale=5.0
        )
        outs[method] = denoise(denoiser, sched, x0.clone(), spec, 5)
    assert torch.allclose(outs["perpneg"], outs["composable"], atol=1e-6)


def test_save_load_and_bad_input(pipe, tmp_path):
    pipe.save_pretrained(tmp_path / "model")
    loaded = load_pipeline(tmp_path / "model", scheduler="euler")
    assert isinstance(loaded, StableDiffusionPerpNegPipeline)
    assert type(loaded.scheduler).__name__ == "EulerDiscreteScheduler"
    with pytest.raises(ValueError, match="unknown scheduler"):
        load_pipeline(tmp_path / "model", scheduler="heun2")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="model_index.json"):
        load_pipeline(tmp_path / "empty")
    with pytest.raises(ValueError, match="one weight per negative"):
        pipe("a lion", negative_prompts=["a cat", "a car"], negative_weights=[1.0])
    with pytest.raises(ConfigError, match="unknown scheduler"):
        PaperProfile(scheduler="heun9")
    with pytest.raises(ConfigError):
        PaperProfile(scale=1.0)
    with pytest.raises(ValueError, match="unknown guidance"):
        pipe("a lion", method="magic", num_inference_steps=1)


def test_sds_plumbing_with_view_weights(pipe):
    """Perp-Neg SDS through the tiny UNet, per-sample view weights, gradient reaches θ."""
    from perpneg.sds import guided_sds_grad, sds_loss
    from perpneg.views import view_mix

    theta = torch.zeros(2, 3, 64, 64, requires_grad=True)
    image = torch.sigmoid(theta)
    latents = torch.nn.functional.interpolate(image, size=8)[:, :1].repeat(1, 4, 1, 1)
    views = {v: pipe._embed([f"a lion, {v} view"], None)[0] for v in ("front", "side", "back")}
    mixes = [view_mix(a) for a in (30.0, 150.0)]
    pos = torch.cat([m.r * views[m.first] + (1 - m.r) * views[m.second] for m in mixes])
    negs = [torch.cat([views[m.negatives[i]] for m in mixes]) for i in range(2)]
    weights = [torch.tensor([-m.weights[i] for m in mixes]) for i in range(2)]
    uncond = pipe._embed([""], None)[0].repeat(2, 1, 1)
    spec = GuidanceSpec(uncond=uncond, pos=pos, negs=negs, neg_weights=weights, scale=100.0)
    alphas = pipe.scheduler.alphas_cumprod
    t = torch.tensor([200, 800])
    noise = torch.randn(latents.shape, generator=torch.Generator().manual_seed(0))
    from perpneg.sampling import unet_denoiser

    grad = guided_sds_grad(unet_denoiser(pipe.unet), spec, latents, alphas, t, noise)
    assert grad.shape == latents.shape and torch.isfinite(grad).all()
    sds_loss(latents, grad).backward()
    assert theta.grad is not None and theta.grad.abs().sum() > 0
    # With no negatives the same call gives the plain CFG SDS gradient.
    plain = GuidanceSpec(uncond=uncond, pos=pos, method="cfg", scale=100.0)
    no_neg = GuidanceSpec(uncond=uncond, pos=pos, scale=100.0)
    d = unet_denoiser(pipe.unet)
    assert torch.equal(
        guided_sds_grad(d, plain, latents, alphas, t, noise),
        guided_sds_grad(d, no_neg, latents, alphas, t, noise),
    )
