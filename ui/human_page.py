"""The human-baseline view of a run: label random validation images, see the human accuracy
beside the model's. Layout only: train.human draws the sample, stores answers and scores."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from audit.errors import UserError
from train import human
from ui.safety import OutsideAllowedRoots, checked, markdown


def render(run_path: Path) -> None:
    st.subheader("Human baseline")
    st.caption(
        "Random validation images of this run, shown without their labels or names: pick "
        "the class you see. Your accuracy (with its 95% interval) is what the data allows a "
        "person; compare the model's with it."
    )
    try:
        document = human.load(run_path)
    except UserError as error:
        st.error(f"Not read: {markdown(error)}")
        return
    if document is None:
        _draw_form(run_path)
        return
    summary(run_path)
    position = human.next_unanswered(document)
    items = document["items"]
    if position is None:
        st.success(f"All {len(items)} images of the sample are labelled.")
        if st.button("Draw a new sample (the answers are discarded)", key="human_redraw"):
            _draw(run_path, len(items), int(document.get("seed", 0)) + 1, replace=True)
        return
    st.markdown(f"**Image {position + 1} of {len(items)}**")
    try:
        picture = human.image_bytes(str(checked(items[position]["path"])))
        if picture is None:
            st.warning("This image cannot be read any more: skip it to go on.")
    except OutsideAllowedRoots as error:
        st.error(f"Not shown: {markdown(error)}; skip it to go on.")
        picture = None
    # Class buttons only beside an image; "can't tell" has a key of its own, whatever
    # the classes are called (a class named "(can't tell)" is just a class).
    classes = document["class_names"] if picture is not None else []
    if picture is not None:
        st.image(picture, width=256)
    columns = st.columns(min(len(classes) + 1, 6))
    for index, option in enumerate(classes):
        columns[index % len(columns)].button(
            markdown(option),
            key=f"human_answer_{index}",
            on_click=_answer,
            args=(run_path, position, option),
        )
    columns[len(classes) % len(columns)].button(
        "can't tell" if picture is not None else "skip (counted as can't tell)",
        key="human_cant_tell",
        on_click=_answer,
        args=(run_path, position, human.CANT_TELL),
    )


def _draw_form(run_path: Path) -> None:
    columns = st.columns(2)
    count = columns[0].number_input("Images to label", 1, 1000, 50, key="human_count")
    seed = columns[1].number_input("Seed of the draw", 0, 2**32 - 1, 0, key="human_seed")
    if st.button("Draw the sample", key="human_draw"):
        _draw(run_path, int(count), int(seed), replace=False)


def _draw(run_path: Path, count: int, seed: int, replace: bool) -> None:
    try:
        human.draw(run_path, count=count, seed=seed, replace=replace)
    except UserError as error:
        st.error(f"Not drawn: {markdown(error)}")
        return
    st.rerun()


def _answer(run_path: Path, position: int, option: str | None) -> None:
    try:
        human.answer(run_path, position, option)
    except UserError as error:
        st.session_state["training_flash"] = ("error", f"Answer not stored: {markdown(error)}")


def summary(run_path: Path) -> None:
    """The human accuracy beside the model's (nothing before the first answer)."""
    try:
        result = human.score(human.load(run_path))
    except UserError:
        return
    if not result.answered:
        return
    low, high = result.interval
    columns = st.columns(2)
    columns[0].metric(
        "Human accuracy",
        f"{result.accuracy:.1%}",
        help=f"{result.correct} of {result.answered} right ({result.cant_tell} can't tell, "
        f"counted wrong); 95% Wilson interval {low:.1%} to {high:.1%}",
    )
    columns[0].caption(
        f"{result.correct} of {result.answered} answered right "
        f"({result.sample} drawn); 95% interval {low:.1%} to {high:.1%}"
    )
    model = human.model_accuracy(run_path)
    if model is not None:
        columns[1].metric(
            "Model accuracy (best validation)",
            f"{model['best_val_accuracy']:.1%}",
            help="the trained stage with the lowest best validation loss, on all validation images",
        )
        columns[1].caption(f"{markdown(model['stage'])} ({model['status']})")
