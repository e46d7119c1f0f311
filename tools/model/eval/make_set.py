"""Build a small labelled person/no-person set from images shipped in PyPI wheels."""
import numpy as np
import os

from matplotlib import cbook  # sample data: pip install matplotlib in the eval env

OUT = os.environ.get("XL_EVAL_SET", "/tmp/xl-eval-set.npz")
from skimage import data, io
from agent.vision.detector import resize_rgb

def rgb(im):
    if im.dtype != np.uint8:
        im = im.astype(np.float64)
        im = (255 * (im - im.min()) / max(np.ptp(im), 1e-9)).astype(np.uint8)
    if im.ndim == 2: im = np.repeat(im[:, :, None], 3, 2)
    return np.ascontiguousarray(im[:, :, :3])

people = {  # hand-labelled person boxes, normalised x1,y1,x2,y2
    "astronaut": (rgb(data.astronaut()), (0.04, 0.03, 0.70, 1.0)),
    "cameraman": (rgb(data.camera()), (0.0, 0.12, 0.65, 1.0)),
    "grace_hopper": (rgb(io.imread(cbook.get_sample_data("grace_hopper.jpg"))), (0.02, 0.03, 0.98, 1.0)),
}
bg_names = ["coffee", "chelsea", "rocket", "grass", "brick", "gravel", "coins", "moon", "page", "text",
            "hubble_deep_field", "immunohistochemistry", "retina", "logo", "clock", "cell", "colorwheel", "horse",
            "stereo_motorcycle", "microaneurysms", "shepp_logan_phantom", "checkerboard"]
bgs = {}
for n in bg_names:
    im = getattr(data, n)()
    if isinstance(im, tuple): im = im[0]
    bgs[n] = rgb(im)
rng = np.random.default_rng(1234)
W, H = 640, 480
frames, boxes, kinds, labels = [], [], [], []
# originals
for n, (im, box) in people.items():
    frames.append(resize_rgb(im, H, W)); boxes.append(box); kinds.append(f"orig:{n}"); labels.append(1)
# composites
bgkeys = list(bgs)
for i in range(150):
    pn = list(people)[i % 3]
    im, box = people[pn]
    if rng.random() < 0.5:
        im = im[:, ::-1]; box = (1 - box[2], box[1], 1 - box[0], box[3])
    frac = rng.uniform(0.15, 0.95)  # pasted picture height as fraction of frame height
    ph = int(H * frac); pw = int(ph * im.shape[1] / im.shape[0])
    bg = bgs[bgkeys[rng.integers(len(bgkeys))]]
    frame = resize_rgb(bg, H, W).astype(np.float32)
    x0 = int(rng.integers(0, W - pw + 1)); y0 = int(rng.integers(0, H - ph + 1))
    frame[y0:y0+ph, x0:x0+pw] = resize_rgb(np.ascontiguousarray(im), ph, pw)
    frame = np.clip(frame * rng.uniform(0.5, 1.2), 0, 255).astype(np.uint8)
    gt = ((x0 + box[0]*pw)/W, (y0 + box[1]*ph)/H, (x0 + box[2]*pw)/W, (y0 + box[3]*ph)/H)
    frames.append(frame); boxes.append(gt); kinds.append(f"paste:{pn}:{frac:.2f}"); labels.append(1)
# negatives: whole images and random crops, plus synthetic
for n, im in bgs.items():
    frames.append(resize_rgb(im, H, W)); boxes.append((0,0,0,0)); kinds.append(f"neg:{n}"); labels.append(0)
for i in range(180):
    n = bgkeys[rng.integers(len(bgkeys))]; im = bgs[n]
    h, w = im.shape[:2]; s = rng.uniform(0.3, 1.0)
    ch, cw = max(16, int(h*s)), max(16, int(w*s*rng.uniform(0.8, 1.25)))
    cw = min(cw, w)
    y = int(rng.integers(0, h-ch+1)); x = int(rng.integers(0, w-cw+1))
    crop = im[y:y+ch, x:x+cw]
    if rng.random() < 0.5: crop = crop[:, ::-1]
    fr = np.clip(resize_rgb(np.ascontiguousarray(crop), H, W) * rng.uniform(0.4, 1.3), 0, 255).astype(np.uint8)
    frames.append(fr); boxes.append((0,0,0,0)); kinds.append(f"negcrop:{n}"); labels.append(0)
for i in range(10):
    frames.append(rng.integers(0, 256, (H, W, 3), dtype=np.uint8)); boxes.append((0,0,0,0)); kinds.append("neg:noise"); labels.append(0)
    frames.append(np.full((H, W, 3), int(rng.integers(0, 256)), np.uint8)); boxes.append((0,0,0,0)); kinds.append("neg:flat"); labels.append(0)
np.savez_compressed(OUT, frames=np.stack(frames), boxes=np.array(boxes, np.float32),
                    kinds=np.array(kinds), labels=np.array(labels))
print(len(frames), sum(labels), "positives")
