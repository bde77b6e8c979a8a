"""`%mlops autolog [--model NAME] [--children N] [--exclude-params P,..] [--off]`."""

from __future__ import annotations

from .parsing import MagicParser

HELP = "record every scikit-learn fit (params, metrics, data digests, model); --off stops"


def parser() -> MagicParser:
    p = MagicParser(prog="%mlops autolog",
                    description="From now on, every outermost scikit-learn fit records its "
                                "params, fit time, training metrics, the digests of X and y "
                                "and a search's results: into the active run, else into a run "
                                "of its own that ends with the cell. A later score(X, y) of "
                                "the model is recorded as an evaluation metric.")
    p.add_argument("--model", default=None, metavar="NAME",
                   help="also save each fitted model as the next version of NAME")
    p.add_argument("--children", type=int, default=0, metavar="N",
                   help="record a search's N best candidates as child runs")
    p.add_argument("--exclude-params", default="", metavar="P,...",
                   help="comma-separated param names or patterns not to record "
                        "(e.g. 'verbose,*__n_jobs')")
    p.add_argument("--exclude-metrics", default="", metavar="M,...",
                   help="comma-separated metric names or patterns not to compute "
                        "(e.g. 'roc_auc,log_loss'; '*' for none)")
    p.add_argument("--off", action="store_true", help="stop and restore scikit-learn's methods")
    return p


def run(magics, args) -> None:  # noqa: ANN001
    from .. import api

    if args.off:
        api.autolog(off=True)
        magics.show("autolog is off")
        return
    api.autolog(model_name=args.model, children=args.children,
                exclude_params=_split(args.exclude_params),
                exclude_metrics=_split(args.exclude_metrics))
    model = f", each model saved as the next version of {args.model}" if args.model else ""
    magics.show(f"autolog is on: scikit-learn fits are recorded{model} "
                "(`%mlops autolog --off` to stop)")


def stop_autolog() -> None:
    """Switch autolog off if it is on, without importing scikit-learn or the autolog
    code otherwise (`%unload_ext`)."""
    from .. import api

    if api.autolog_session() is not None:
        api.autolog(off=True)


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]
