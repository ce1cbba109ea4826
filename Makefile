# Run through uv so that `make X` and `uv run make X` both work on a fresh clone.
UV ?= uv
TRECS ?= $(UV) run trecs
PRESSEDPLAY ?= $(UV) run pressedplay
PYTHON := $(UV) run python

MPD_ZIP := data/spotify_million_playlist_dataset.zip
DEMO := data/demo

.PHONY: demo test lint bench-build-db bench-train bench-losses bench-checkpoints bench-generate bench-generate-trecs \
	bench-generate-pressedplay bench-evaluate bench-challenge bench-dataset bench-predict bench-prior bench-real-covers bench-real-playlists bench-server clean-demo

## demo: the main job end to end on built-in synthetic data, no network
# The first track of demo playlist 0 (synth-mpd --seed 0; tests/trecs/test_synth.py pins it).
DEMO_SEED := spotify:track:wbGPjlbQnpRN7kgRKilgYf

# pressedplay keeps its catalogs (and its latest-run note) inside data/demo too.
DEMO_PP := PRESSEDPLAY_HOME=$(DEMO)/pressedplay $(PRESSEDPLAY)

demo: $(DEMO)/ranker/ranker.json $(DEMO)/pressedplay-run/best.pt
	$(TRECS) info $(DEMO)/mpd.db
	$(TRECS) evaluate $(DEMO)/ranker --db $(DEMO)/mpd.db --num-playlists 700 --plot $(DEMO)/evaluation.png
	$(TRECS) generate $(DEMO)/run --track $(DEMO_SEED) --length 10
	$(TRECS) generate $(DEMO)/ranker --track $(DEMO_SEED) --length 10
	$(DEMO_PP) info $(DEMO)/covers.db
	$(DEMO_PP) evaluate $(DEMO)/pressedplay-run --db $(DEMO)/covers.db --split test
	$(DEMO_PP) predict examples/sunset.jpg --model $(DEMO)/pressedplay-run --plot $(DEMO)/radar.png
	$(DEMO_PP) generate examples/sunset.jpg --model $(DEMO)/pressedplay-run --catalog synth --n 10
	$(DEMO_PP) generate examples/sunset.jpg --model $(DEMO)/pressedplay-run --continue $(DEMO)/run --n 10
	@echo "trecs: transformer $(DEMO)/run (curves: $(DEMO)/run/metrics.jsonl), two-stage ranker $(DEMO)/ranker; plot: $(DEMO)/evaluation.png"
	@echo "pressedplay model: $(DEMO)/pressedplay-run; radar chart: $(DEMO)/radar.png"

$(DEMO)/mpd/md5sums:
	$(TRECS) synth-mpd $(DEMO)/mpd --playlists 10000 --tracks 50000 --seed 0 --force

$(DEMO)/mpd.db: $(DEMO)/mpd/md5sums
	$(TRECS) verify $(DEMO)/mpd
	$(TRECS) build-db $@ $(DEMO)/mpd --features $(DEMO)/mpd/catalog.csv --force

# About a minute of training on two CPU cores.
$(DEMO)/run/config.json: $(DEMO)/mpd.db
	rm -rf $(DEMO)/run
	$(TRECS) train $(DEMO)/run --db $(DEMO)/mpd.db --num-steps 600

# The two-stage recommender over that run, trained on 2,000 of the valid split's
# challenge cases (the default 20,000 would take several minutes on two cores).
$(DEMO)/ranker/ranker.json: $(DEMO)/run/config.json
	$(TRECS) train-ranker $(DEMO)/ranker --run $(DEMO)/run --db $(DEMO)/mpd.db --max-cases 2000 --force

# pressedplay: 500 synthetic covers and their catalog, kept inside data/demo.
$(DEMO)/covers.db:
	$(DEMO_PP) synth-covers $@ --covers 500 --force

# A brief pressedplay training run on those covers.
$(DEMO)/pressedplay-run/best.pt: $(DEMO)/covers.db
	rm -rf $(DEMO)/pressedplay-run
	$(DEMO_PP) train $(DEMO)/pressedplay-run --db $(DEMO)/covers.db --epochs 30

clean-demo:
	rm -rf $(DEMO)

## data/mpd.db: the real Million Playlist Dataset, md5sums checked first
$(MPD_ZIP):
	@echo "error: $(MPD_ZIP) is missing. Place your copy of the Million Playlist Dataset" >&2
	@echo "(spotify_million_playlist_dataset.zip) there; AIcrowd no longer serves it." >&2
	@exit 2

data/spotify_million_playlist_dataset.md5-ok: $(MPD_ZIP)
	$(TRECS) verify $(MPD_ZIP)
	touch $@

data/mpd.db: data/spotify_million_playlist_dataset.md5-ok
	$(TRECS) build-db $@ $(MPD_ZIP) --force

## checks and benchmarks
test:
	$(UV) run pytest

lint:
	$(UV) run ruff check .
	$(UV) run ruff format --check .

bench-build-db:
	$(PYTHON) benchmarks/build_db.py

bench-train:
	$(PYTHON) benchmarks/train_step.py

bench-losses:
	$(PYTHON) benchmarks/losses.py

# Both generators: trecs' continuation (s per playlist) and pressedplay's catalog retrieval.
bench-checkpoints:
	$(PYTHON) benchmarks/checkpoints.py

bench-generate: bench-generate-trecs bench-generate-pressedplay

# TRAINED=RUN_DIR adds a trained run's figures (benchmarks/README.md has the recipe).
bench-generate-trecs:
	$(PYTHON) benchmarks/generate.py $(if $(TRAINED),--trained $(TRAINED))

bench-generate-pressedplay:
	$(PYTHON) benchmarks/retrieval.py

bench-evaluate:
	$(PYTHON) benchmarks/evaluate.py

# trecs at the MPD's size: baselines' fit, ranker training, 10,000 challenge playlists
bench-challenge:
	$(PYTHON) benchmarks/challenge_scale.py

# pressedplay: build-db from 5,000 local covers (covers/s) and the input pipeline (images/s)
bench-dataset:
	$(PYTHON) benchmarks/dataset.py

# pressedplay: ms per image from file to eight features, VAE and colour prior
bench-predict:
	$(PYTHON) benchmarks/predict.py

# pressedplay serve under 50 concurrent uploads: /api/config latency, upload p99, memory
bench-prior:
	$(PYTHON) benchmarks/prior_calibration.py

bench-real-covers:
	$(PYTHON) benchmarks/real_covers.py

# trecs on the 2,000 real playlists over split seeds: ranker vs baselines per category
bench-real-playlists:
	$(PYTHON) benchmarks/real_playlists.py

bench-server:
	$(PYTHON) benchmarks/server_burst.py
