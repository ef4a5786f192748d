"""Active learning: choose a pool, a strategy and a budget, see the picks with their reason on a map
of the pool, queue them for review or download them. The work is done by core.active_learning.

The pool (samples, gold labels, reviews, the prediction round's probabilities: no text) is the stored
result of job ``selection_pool`` (computed in the background once per data version); the review queue,
which changes without a data write, is applied to it on every run, and texts are read only for the rows
drawn (picks, map points) or embedded. Only the texts a strategy reads are embedded (a hybrid: its most uncertain candidates); above
``core.active_learning.CONFIRM_ABOVE`` texts not cached yet the page shows an estimate and asks first,
and embedding runs in batches with a Cancel button (the batches done stay cached). Texts are shown
with personal data masked unless a team lead turns it on (audited).
"""

from __future__ import annotations

import uuid

import numpy as np
import plotly.graph_objects as go
import streamlit as st
from plotly.colors import qualitative

from core import active_learning as al
from core import privacy
from core.roles import Action
from core.selection import adaptive_pool_factor
from core.vocab import TEXT_FIELDS
from ui.cache import data_key
from ui.errors import shown_errors
from ui.format import table
from ui.jobs import job_stored
from ui.privacy import reveal_toggle
from ui.session import (
    can,
    current_user,
    get_store,
    refresh_after_write,
    require_dataset,
)

MAX_MAP_POINTS = 5000
K_DEFAULT = 50  # the budget on arrival (the pool size when the pool is smaller)
POOL_NAMES = {"unlabeled": "Unlabeled (no gold label)", "all": "All samples", "batch": "One batch",
              "round": "One round"}
METHOD_NAMES = {"least_confidence": "least confidence", "margin": "margin", "entropy": "entropy"}

st.title("Active learning")
dataset = require_dataset()
writer = can(Action.QUEUE_RULES)  # queueing the picks is a lead's (core.roles.ALLOWED)
decision = reveal_toggle(dataset, "active learning page", "sel_reveal")  # a lead's, audited; else masked


def remember(key: str, default, options=None):
    """Give widget ``key`` its remembered value (kept under ``_key`` so it survives page switches)."""
    value = st.session_state.get(key, st.session_state.get(f"_{key}", default))
    if options is not None and value not in options:
        value = default
    st.session_state[key] = value


def keep(*keys: str) -> None:
    for key in keys:
        if key in st.session_state:
            st.session_state[f"_{key}"] = st.session_state[key]


@st.cache_data(ttl=60, show_spinner=False)
def load_options(key: tuple) -> dict:
    name = key[1]
    return al.pool_options(get_store(), name)


@st.cache_data(ttl=60, show_spinner=False)
def load_queue(key: tuple):
    """The review queue's sample_id and status (queue actions change no data version: keyed by the audit log)."""
    return get_store().queue(key[1]).select("sample_id", "status")


@st.cache_data(ttl=600, show_spinner="Reading a sample of the texts…", max_entries=16)
def load_choice_texts(key: tuple, _pool) -> list[str]:
    """The texts that choose the embedding model (a sample of the pool's: core.active_learning.choice_texts)."""
    return al.choice_texts(_pool, get_store())


@st.cache_data(ttl=60, show_spinner="Checking the embedding cache…", max_entries=16)
def load_estimate(params: tuple, _pool, _rows, _model):
    return al.embedding_estimate(_pool, _rows, get_store(), _model)


def duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def masked(frame, columns):
    """Personal data masked in the text ``columns`` of a table or map frame, unless a lead revealed it."""
    return privacy.mask_frame(frame, decision, dataset, columns=[c for c in columns if c in frame.columns])


@st.cache_data(max_entries=8, show_spinner="Projecting the pool…")
def project(result_id: str, method: str, _vectors):
    return al.project_2d(_vectors, method)


with shown_errors(stop=True):
    opts = load_options(data_key(dataset))
has_predictions = bool(opts["pred_rounds"])

# -- settings ------------------------------------------------------------------------------------
left, mid, right = st.columns(3)
with left:
    remember("sel_pool", "unlabeled", list(POOL_NAMES))
    kind = st.selectbox("Pool", list(POOL_NAMES), format_func=POOL_NAMES.get, key="sel_pool",
                        help="Unlabeled: samples without a gold label (latest review, else a strict majority "
                             "of annotators; a tie counts as unlabeled).")
    batch = round_ = None
    if kind == "batch":
        if not opts["batches"]:
            st.info("No sample of this dataset has a batch.")
            st.stop()
        remember("sel_batch", opts["batches"][-1], opts["batches"])
        batch = st.selectbox("Batch", opts["batches"], key="sel_batch")
    elif kind == "round":
        if not opts["rounds"]:
            st.info("No sample of this dataset has a round.")
            st.stop()
        remember("sel_round", opts["rounds"][-1], opts["rounds"])
        round_ = st.selectbox("Round", opts["rounds"], key="sel_round")
    remember("sel_excl_reviewed", True)
    excl_reviewed = st.checkbox("Exclude reviewed samples", key="sel_excl_reviewed",
                                help="Leave out samples that already have a review on the Review page.")
    remember("sel_excl_queued", True)
    excl_queued = st.checkbox("Exclude queued samples", key="sel_excl_queued",
                              help="Leave out samples already in the review queue (open or claimed entries, "
                                   "for any reason).")

with mid:
    strategies = list(al.STRATEGIES)
    remember("sel_strategy", "margin" if has_predictions else "k_center", strategies)

    def strategy_name(key: str) -> str:
        name = al.STRATEGIES[key]
        return name if has_predictions or key not in al.NEEDS_PROBS else f"{name} — needs predictions"

    strategy = st.selectbox("Strategy", strategies, format_func=strategy_name, key="sel_strategy")
    method, pool_factor, round_index, n_rounds = "margin", 10.0, 0, 10
    if strategy in ("hybrid", "adaptive_hybrid"):
        remember("sel_method", "margin", list(METHOD_NAMES))
        method = st.selectbox("Uncertainty measure", list(METHOD_NAMES), format_func=METHOD_NAMES.get,
                              key="sel_method")
    if strategy == "hybrid":
        remember("sel_pool_factor", 10)
        pool_factor = float(st.slider("Pool factor", 1, 50, key="sel_pool_factor",
                                      help="k-center greedy runs among the pool factor × k most uncertain samples."))
    elif strategy == "adaptive_hybrid":
        c1, c2 = st.columns(2)
        remember("sel_n_rounds", 10)
        n_rounds = int(c2.number_input("Rounds planned", 1, 100, key="sel_n_rounds"))
        remember("sel_round_index", 1)
        st.session_state["sel_round_index"] = min(st.session_state["sel_round_index"], n_rounds)
        round_index = int(c1.number_input("This round", 1, n_rounds, key="sel_round_index")) - 1
        st.caption(f"Round {round_index + 1} of {n_rounds}: k-center among the "
                   f"{adaptive_pool_factor(round_index, n_rounds):.1f} × k most uncertain "
                   "(diverse early, pure uncertainty in the last round).")

with right:
    k_slot = st.container()  # the budget is drawn once the pool is read: its default fits the pool
    pred_round = None
    if has_predictions:
        remember("sel_pred_round", opts["pred_rounds"][-1], opts["pred_rounds"])
        pred_round = st.selectbox("Predictions of round", opts["pred_rounds"], key="sel_pred_round",
                                  help="Uncertainty is computed from this round's predicted probabilities.")
    else:
        st.caption("No model predictions yet.")

keep("sel_pool", "sel_batch", "sel_round", "sel_excl_reviewed", "sel_excl_queued", "sel_strategy", "sel_method",
     "sel_pool_factor", "sel_n_rounds", "sel_round_index", "sel_pred_round")

# The stored pool (job selection_pool): the latest prediction round is the job's default (None), so the
# pool `python -m core analyze` precomputed is the one the page opens on.
job_params = {"kind": kind, "batch": batch, "round": None if round_ is None else int(round_),
              "pred_round": None if pred_round is None or pred_round == opts["pred_rounds"][-1] else int(pred_round)}
stored = job_stored(dataset, "selection_pool", job_params, key="sel_job")
if stored is None:
    st.info("The candidate pool of this choice is being prepared in the background (it reads every sample's "
            "labels and predictions once; later visits read it at once). The page shows it when it is done. "
            "`python -m core analyze` prepares the default pool ahead of time.")
    st.stop()
pool_key = (data_key(dataset), stored.data_version, tuple(sorted(job_params.items(), key=lambda kv: kv[0])))
with shown_errors(stop=True):
    # queued entries change without a data write: read the queue fresh (keyed by the audit log) and apply it
    pool = al.with_candidates(stored.value, load_queue(data_key(dataset, audit=True)), excl_reviewed, excl_queued)

# The budget: K_DEFAULT, or the whole pool when it is smaller (Select is never disabled on arrival). A
# budget the user typed is kept; the default follows the pool as it changes.
n_cand = pool.n_candidates(strategy)
k_default = max(1, min(K_DEFAULT, n_cand))
k_value = st.session_state.get("sel_k", st.session_state.get("_sel_k"))
if k_value is None or k_value == st.session_state.get("_sel_k_auto"):
    k_value = k_default
    st.session_state["_sel_k_auto"] = k_default
st.session_state["sel_k"] = k_value
k = int(k_slot.number_input("Budget k", min_value=1, max_value=100_000, step=10, key="sel_k",
                            help=f"How many samples to pick (default {K_DEFAULT}, or the whole pool when it "
                                 "is smaller)."))
keep("sel_k")

# -- pool summary and empty states -----------------------------------------------------------------
needs_probs = strategy in al.NEEDS_PROBS
needs_emb = strategy in al.NEEDS_EMBEDDINGS
choice = emb_model = None


def embedding_choice():
    """The embedding model's description and the model (None when unavailable), from a sample of the pool's
    texts: read only when something is embedded."""
    global choice, emb_model
    if choice is None:
        sample = []
        with shown_errors():
            sample = load_choice_texts(pool_key, pool)
        try:
            choice = al.describe_choice(sample)
            emb_model = al.resolve_model(sample)
        except Exception as exc:  # noqa: BLE001 - a broken embeddings install: say so, keep the page
            choice = f"embedding model unavailable ({type(exc).__name__}: {exc})"
    return choice, emb_model


parts = [f"**{pool.n:,}** samples in the pool", f"**{pool.n_candidates():,}** candidates"]
if pool.excluded_reviewed or pool.excluded_queued:
    parts[-1] += f" ({pool.excluded_reviewed:,} reviewed and {pool.excluded_queued:,} queued left out)"
if pool.pred_round is not None:
    parts.append(f"{pool.n_candidates('margin'):,} with a prediction of round {pool.pred_round}")
st.markdown(" · ".join(parts))
if needs_emb:
    embedding_choice()
    st.caption(f"Embeddings: {choice}. Vectors are cached in the store, so a second run is quick.")

blocked = None
if needs_probs and not has_predictions:
    blocked = "info"
    st.info(f"**{al.STRATEGIES[strategy]}** needs model predictions, and this dataset has none yet. Import "
            "predictions (a `probs` column with `pred_round`) on the **Import** page, or choose **k-center** "
            "or **k-means**, which need only the texts.")
elif pool.n == 0:
    blocked = "info"
    st.info("The pool is empty: every sample of this choice has a gold label. Choose another pool "
            "(e.g. **All samples** or a batch).")
    if kind != "all":
        st.button("Use all samples", key="sel_use_all", icon=":material/select_all:",
                  on_click=lambda: st.session_state.update(sel_pool="all", _sel_pool="all"),
                  help="Pick among every sample, labeled or not (reviewed and queued ones stay excluded if ticked).")
elif n_cand == 0:
    blocked = "info"
    why = ("none has a prediction of this round" if needs_probs and pool.n_candidates()
           else "all are reviewed or already queued")
    st.info(f"No candidate left in the pool: {why}. Untick an exclusion or choose another pool.")
elif k > n_cand:
    blocked = "warning"
    what = "samples with a prediction" if needs_probs else "candidate samples"
    st.warning(f"Budget k = {k:,} is larger than the pool: only {n_cand:,} {what}. Lower k to at most "
               f"{n_cand:,} or widen the pool.")

map_embed = needs_emb
if not needs_emb:
    remember("sel_map_embed", False)
    map_embed = st.checkbox("Draw the map from text embeddings (embeds the pool; otherwise the map shows the "
                            "predicted probabilities)", key="sel_map_embed")
    keep("sel_map_embed")

params = (dataset, kind, batch, round_, pred_round, excl_reviewed, excl_queued, strategy, method, pool_factor,
          round_index, n_rounds, k, map_embed)

# -- what embedding costs, before it starts ---------------------------------------------------------
to_embed = estimate = None
if blocked is None and (needs_emb or map_embed):
    embedding_choice()
    with shown_errors():
        # the map from embeddings needs every row; otherwise only what the strategy reads
        to_embed = (np.arange(pool.n, dtype=np.int64) if map_embed and not needs_emb else
                    al.embedding_rows(pool, strategy, k, method=method, pool_factor=pool_factor,
                                      round_index=round_index, n_rounds=n_rounds))
        estimate = load_estimate((*pool_key, data_key(dataset, audit=True), *params), pool, to_embed, emb_model)
confirmed = True
if estimate is not None:
    only = (f" (only the {estimate['texts']:,} most uncertain candidates: k-center runs among them)"
            if strategy in ("hybrid", "adaptive_hybrid") else "")
    if estimate["to_encode"] == 0:
        st.caption(f"Embeds {estimate['texts']:,} texts{only}: all are cached already.")
    else:
        how = "measured on this server" if estimate["measured"] else "a cautious rate until a run is measured"
        st.caption(f"Embeds {estimate['texts']:,} texts{only}: {estimate['to_encode']:,} not cached yet, "
                   f"about {duration(estimate['seconds'])} ({how}). You can cancel while it runs; what is done "
                   "stays cached.")
    if estimate["confirm"]:
        st.warning(f"This embeds **{estimate['to_encode']:,} texts** that are not cached yet: about "
                   f"**{duration(estimate['seconds'])}**. A smaller pool (a batch, a round) or a smaller budget "
                   "embeds fewer.")
        confirmed = st.checkbox(f"Embed {estimate['to_encode']:,} texts (about {duration(estimate['seconds'])})",
                                key="sel_confirm_embed")
if st.session_state.pop("sel_cancelled", False):
    st.info("Embedding cancelled. The texts embedded so far are cached: the next run starts from there.")

if st.button("Select", type="primary", key="sel_run", disabled=blocked is not None or not confirmed,
             icon=":material/target:"):
    vectors = None
    with shown_errors():
        if to_embed is not None:
            bar = st.progress(0.0, text="Loading the embedding model…")
            # Clicking Cancel starts a new run, which stops this one at the next batch (Streamlit ends a
            # run when a widget changes); core.embeddings saves each batch, so nothing done is lost.
            st.button("Cancel", key="sel_cancel", icon=":material/cancel:",
                      on_click=lambda: st.session_state.update(sel_cancelled=True))
            try:
                vectors = al.embed_rows(pool, to_embed, store=get_store(), model=emb_model, progress=lambda done, total: bar.progress(
                    min(done / max(total, 1), 1.0), text=f"Embedding {done:,} / {total:,} texts"))
            finally:
                bar.empty()
                load_estimate.clear()  # the cache holds more texts now (also after a cancel)
        with st.spinner("Selecting…"):
            picks = al.select(pool, strategy, k, vectors, method=method, pool_factor=pool_factor,
                              round_index=round_index, n_rounds=n_rounds, store=get_store())
            if vectors is not None:  # the rows that were embedded (a hybrid: its uncertain candidates)
                space = vectors
                rows = al.map_rows(pool, picks, MAX_MAP_POINTS, only=np.isfinite(vectors).all(axis=1))
            else:  # samples without a prediction have no place in the probability space
                space = pool.probs
                rows = al.map_rows(pool, picks, MAX_MAP_POINTS, only=pool.frame["has_pred"].to_numpy())
        st.session_state["sel_result"] = {
            "id": uuid.uuid4().hex, "params": params, "pool": pool,
            "picks": picks, "rows": rows, "map_vectors": space[rows],
            "map_space": "text embeddings" if vectors is not None else "predicted probabilities",
            "strategy": strategy, "k": k, "choice": choice if vectors is not None else None,
        }

result = st.session_state.get("sel_result")
if not result or result["params"][0] != dataset:
    st.stop()

# -- results ---------------------------------------------------------------------------------------
picks = result["picks"]
st.subheader(f"{picks.height:,} picks · {al.STRATEGIES[result['strategy']]}")
if result["params"] != params:
    st.caption("These picks were made with other settings: press **Select** to update them.")
picks_shown = masked(picks, ["sample_text", *TEXT_FIELDS])  # also what the downloads hold
table(picks_shown.select("rank", "sample_id", "score", "reason", "predicted", "confidence", "sample_text", "batch",
                         "round"),
      column_config={"sample_text": st.column_config.TextColumn("Text", width="large")})

c1, c2, c3 = st.columns([2, 1, 1])
stem = f"{dataset}_{result['strategy']}_k{result['k']}".replace("/", "_").replace(" ", "_")
if writer and c1.button(f"Queue the {picks.height:,} picks for review", key="sel_queue",
                        icon=":material/playlist_add:"):
    with shown_errors():
        added = al.queue_picks(get_store(), dataset, picks, current_user(),
                               detail={"strategy": result["strategy"], "k": result["k"],
                                       "pool": result["params"][1]})
        refresh_after_write()
        skipped = picks.height - added
        st.success(f"Queued {added:,} samples for review (reason `{al.QUEUE_REASON}`)"
                   + (f"; {skipped:,} were already in the queue." if skipped else "."))
c2.download_button("Download CSV", al.picks_csv(picks_shown, result["strategy"]), file_name=f"{stem}.csv",
                   mime="text/csv", key="sel_dl_csv", icon=":material/download:")
c3.download_button("Download JSONL", al.picks_jsonl(picks_shown, result["strategy"]), file_name=f"{stem}.jsonl",
                   mime="application/jsonl", key="sel_dl_jsonl", icon=":material/download:")

# -- the map ---------------------------------------------------------------------------------------
st.subheader("Map of the pool")
remember("sel_projection", "pca", ["pca", "tsne"])
method_2d = st.radio("Projection", ["pca", "tsne"], format_func={"pca": "PCA", "tsne": "t-SNE"}.get,
                     horizontal=True, key="sel_projection")
keep("sel_projection")
with shown_errors(stop=True):
    xy = project(result["id"], method_2d, result["map_vectors"])
    frame = masked(al.map_frame(result["pool"], picks, xy, result["rows"], get_store()), ["text"]).to_pandas()
labels = sorted(frame["predicted"].unique())
colors = {lab: qualitative.Plotly[i % len(qualitative.Plotly)] for i, lab in enumerate(labels)}
colors["(no prediction)"] = "#9e9e9e"
fig = go.Figure()
for lab in labels:
    rest = frame[(frame["predicted"] == lab) & ~frame["picked"]]
    fig.add_trace(go.Scattergl(x=rest["x"], y=rest["y"], mode="markers", name=lab, legendgroup=lab,
                               marker={"size": 6, "color": colors[lab], "opacity": 0.45},
                               customdata=rest[["sample_id", "text"]],
                               hovertemplate="%{customdata[0]}<br>%{customdata[1]}<extra>" + lab + "</extra>"))
for lab in labels:
    hit = frame[(frame["predicted"] == lab) & frame["picked"]]
    if len(hit):
        fig.add_trace(go.Scatter(x=hit["x"], y=hit["y"], mode="markers", name=f"{lab} (pick)", legendgroup=lab,
                                 showlegend=False,
                                 marker={"size": 13, "color": colors[lab], "symbol": "star",
                                             "line": {"width": 1.5, "color": "black"}},
                                 customdata=hit[["sample_id", "text", "rank"]],
                                 hovertemplate="pick #%{customdata[2]} · %{customdata[0]}<br>%{customdata[1]}"
                                               "<extra>" + lab + "</extra>"))
fig.update_layout(height=520, margin={"l": 10, "r": 10, "t": 30, "b": 10}, legend_title_text="predicted label",
                  title={"text": "★ = pick", "font": {"size": 13}})
fig.update_xaxes(showticklabels=False, title=None)
fig.update_yaxes(showticklabels=False, title=None)
st.plotly_chart(fig, width="stretch", key="sel_map")
shown = len(frame)
st.caption(f"{'PCA' if method_2d == 'pca' else 't-SNE'} of the {result['map_space']}"
           + (f" ({result['choice']})" if result["choice"] else "")
           + f" · {shown:,} of {result['pool'].n:,} pool samples shown"
           + (" (a uniform sample, every pick kept)" if shown >= MAX_MAP_POINTS and result["pool"].n > shown
              else "")
           + (" (samples without a prediction have no place in this space)"
              if result["map_space"] == "predicted probabilities" and shown < result["pool"].n else "")
           + (" (only the texts the strategy embedded)"
              if result["map_space"] == "text embeddings" and shown < min(result["pool"].n, MAX_MAP_POINTS) else "")
           + " · colored by predicted label.")
