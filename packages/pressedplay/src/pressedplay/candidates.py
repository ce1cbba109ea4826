"""Which predictor a run answers with: the one of four with the lowest valid MSE.

On thousands of synthetic covers the VAE beats everything; on a few hundred real album
covers it learns little beyond the mean, and ridge on colour statistics little more
(README, "Real covers"). So after training, `train` scores four candidates on the valid
split, in the dataset's standardised units over its (cover, track) pairs:

- vae: the best epoch's VAE (`best.pt`);
- ridge: ridge regression on the 19 colour statistics, fitted on the train covers with
  each feature's penalty chosen by 5-fold cross-validation inside train, so the valid
  split is spent on the choice between candidates only;
- blend: the average of the two;
- mean: the train split's mean, whatever the image;

and writes the choice, the scores and what ridge and the mean need to `RUN/candidates.json`.
`predict.load_predictor(RUN)` answers with the chosen one (`predict.ChosenPredictor`). A feedback fine-tune keeps the
VAE (only it learns from verdicts), and the scores are still reported.
"""

from __future__ import annotations

import json
from pathlib import Path

from pressedplay import checkpoints, colour_stats
from pressedplay.atomic import replacing
from pressedplay.evaluate import Split, predict_covers, scores
from pressedplay.predict import (
    CANDIDATES,
    CANDIDATES_FILE,
    STATS_SIZE,
    ChosenPredictor,
    VAEPredictor,
)
from pressedplay.ridge import Ridge


def choose(run_dir: Path, db: Path, *, feedback: bool = False, workers: int = 0) -> dict:
    """Score the candidates on `db`'s valid split, write RUN/candidates.json and return
    {"chosen", "valid_mse": {name: mse}}."""
    run_dir = Path(run_dir)
    vae = VAEPredictor(checkpoints.load_model(run_dir / checkpoints.BEST))
    train, valid = Split(db, "train"), Split(db, "valid")
    read = {"batch_size": 64, "workers": workers}
    (train_stats,) = train.per_cover(STATS_SIZE, [colour_stats.matrix], **read)
    record = {
        "ridge": Ridge.cross_validated(train_stats, train.cover_targets, train.counts).to_dict(),
        "mean": train.targets.mean(0).tolist(),  # standardised, like ridge's answers
        "feature_mean": train.pairs.mean.tolist(),
        "feature_std": train.pairs.std.tolist(),
    }
    # Each candidate is scored through the predictor that would answer for it.
    answers = {"vae": vae} | {
        name: ChosenPredictor(vae, {**record, "chosen": name}) for name in CANDIDATES[1:]
    }
    _, original = predict_covers(lambda size, f: valid.per_cover(size, f, **read), answers)
    valid_mse = {
        name: scores(valid.standardise(original[name]), valid)["mse"] for name in CANDIDATES
    }
    chosen = "vae" if feedback else min(CANDIDATES, key=lambda name: valid_mse[name])
    record = {
        "chosen": chosen,
        "valid_mse": valid_mse,
        "valid_covers": len(valid.cover_ids),
        **record,
    }
    with replacing(run_dir / CANDIDATES_FILE) as tmp:
        tmp.write_text(json.dumps(record, indent=1))
    return {"chosen": chosen, "valid_mse": valid_mse}
