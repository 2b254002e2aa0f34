"""Writes the augmenter files of the release before versions became the default.

Run from a checkout of commit 53ede01^ (``git worktree add /tmp/old 53ede01^``)::

    PYTHONPATH=/tmp/old/src python tests/data/make_old_files.py tests/data

It writes ``augmenter-format2.pt`` (class GAN and version model, no reference bank),
``augmenter-format1.pt`` (class GAN only) and ``augmenter-old-data.npz`` (their training data
and what that release's ``sample`` and ``sample_like`` returned), which
``tests/test_persistence.py`` loads with today's covergan. The old API it calls
(``versions=`` beside ``gan=`` with no ``model=``) is that release's.
"""

import sys

import numpy as np

from covergan import Augmenter
from covergan.cqt import CQTConfig
from covergan.data import CQTDataset

out = sys.argv[1]
rng = np.random.default_rng(0)
feats, songs = [], []
for w, n in enumerate((3, 3, 2, 2, 1)):
    pattern = rng.integers(2, 22, size=6)
    for _ in range(n):
        x = np.full((24, 40), 1e-3, np.float32)
        x[pattern[np.arange(40) // 7 % 6], np.arange(40)] = 1.0
        feats.append(x * rng.uniform(0.5, 1.0))
        songs.append(f"work-{w}")
data = CQTDataset.from_arrays(feats, songs, config=CQTConfig(n_bins=24))
tiny_gan = {
    "g_width": 4,
    "d_width": 4,
    "batch_size": 4,
    "max_width": 16,
    "z_dim": 8,
    "embed_dim": 8,
}
tiny_versions = {"z_dim": 8, "g_width": 4, "d_width": 4, "max_width": 16, "batch_size": 4}
both = Augmenter(gan=tiny_gan, versions=tiny_versions, steps=2, window=16, seed=0, progress=False)
both.fit(data).save(f"{out}/augmenter-format2.pt")
gan = Augmenter(gan=tiny_gan, steps=2, window=16, seed=0, progress=False)
gan.fit(data).save(f"{out}/augmenter-format1.pt")
np.savez_compressed(
    f"{out}/augmenter-old-data.npz",
    features=np.stack(feats),
    songs=np.array(songs),
    gan_sample=both.sample("work-4", 2, seed=0).numpy(),  # what that release's sample gave
    version_sample=both.sample_like(feats[0], 2, seed=0).numpy(),
    gan_only_sample=gan.sample("work-0", 3, seed=0).numpy(),
)
