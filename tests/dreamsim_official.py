"""Run dreamsim 0.1.2's own code (with peft 0.1.0) on a DreamSim cache folder; a subprocess of
tests/test_dreamsim.py, so that those old packages never enter the test process.

    python dreamsim_official.py PKG_DIR CACHE_DIR DIM DEPTH HIDDEN IMAGES.npz OUT_DIR VARIANT...

PKG_DIR holds the unpacked packages (dreamsim, peft, accelerate). The backbone is dreamsim's own
DINO-layout VisionTransformer at the test's small width/depth (its vit_base is fixed at
ViT-B size); torch.hub.load('facebookresearch/dino:main', 'dino_vitb16') is answered with that
class loaded strictly from CACHE_DIR/checkpoints/dino_vitbase16_pretrain.pth, as DINO's hubconf
does. bitsandbytes (imported unconditionally by peft 0.1.0, used only for 8-bit layers) is a
stub module. OUT_DIR/<variant>.npy is what thingsvision 2.6.10 reads at `model.mlp` for the batch.
"""

import sys
import types
from functools import partial

import numpy as np
import torch


def main(pkg_dir, cache_dir, dim, depth, hidden, images, out_dir, *variants):
    sys.path.insert(0, pkg_dir)
    bnb = types.ModuleType("bitsandbytes")
    bnb.nn = types.SimpleNamespace(Linear8bitLt=type("Linear8bitLt", (torch.nn.Linear,), {}))
    sys.modules["bitsandbytes"] = bnb
    import dreamsim.feature_extraction.load_open_clip_as_dino as open_clip_as_dino
    import dreamsim.model as dm
    from dreamsim.feature_extraction.vision_transformer import VisionTransformer
    from PIL import Image

    dim, depth, hidden = int(dim), int(depth), int(hidden)
    small = partial(VisionTransformer, embed_dim=dim, depth=depth, num_heads=dim // 64,
                    mlp_ratio=hidden / dim, qkv_bias=True,
                    norm_layer=partial(torch.nn.LayerNorm, eps=1e-6))
    open_clip_as_dino.vit_base = lambda patch_size: small(patch_size=patch_size)

    def hub_load(repo, name, **kwargs):
        assert (repo, name) == ("facebookresearch/dino:main", "dino_vitb16")
        model = small(patch_size=16, num_classes=0)
        sd = torch.load(f"{cache_dir}/checkpoints/dino_vitbase16_pretrain.pth",
                        map_location="cpu")
        model.load_state_dict(sd, strict=True)
        return model

    torch.hub.load = hub_load
    for variant in variants:
        model, preprocess = dm.dreamsim(pretrained=True, device="cpu", cache_dir=cache_dir,
                                        normalize_embeds=False, dreamsim_type=variant)
        seen = {}
        model.mlp.register_forward_hook(
            lambda module, args, output, seen=seen: seen.setdefault("mlp", output))
        with np.load(images) as data:
            batch = torch.cat([preprocess(Image.fromarray(data[k])) for k in sorted(data.files)])
        with torch.no_grad():
            model.embed(batch)
        np.save(f"{out_dir}/{variant}.npy", seen["mlp"].double().numpy())

if __name__ == "__main__":
    main(*sys.argv[1:])
