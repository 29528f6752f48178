"""The track timeline: one row per object, the video's frames along it, coloured by
state. It draws from :class:`~napari_sam2_track.track_states.TrackStates`, one pixel
column at a time, so its cost depends on its width, not on the video's length.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from qtpy.QtCore import QEvent, QPoint, QRect, Qt
from qtpy.QtCore import Signal as QtSignal
from qtpy.QtGui import QColor, QImage, QMouseEvent, QPainter, QPaintEvent, QPen
from qtpy.QtWidgets import QSizePolicy, QToolTip, QWidget

from .track_states import STATE_NAMES, FrameState, TrackStates, binned_states

#: RGBA of each state, indexed by its value.
STATE_COLORS = np.array(
    [
        (60, 60, 60, 255),  # not tracked yet
        (76, 175, 80, 255),  # tracked
        (33, 150, 243, 255),  # painted
        (255, 179, 0, 255),  # low score
        (229, 57, 53, 255),  # no mask
        (255, 255, 255, 255),  # prompted
    ],
    dtype=np.uint8,
)
ROW_HEIGHT, LABEL_WIDTH, RULER_HEIGHT, LEGEND_HEIGHT, MARGIN = 14, 120, 14, 16, 4


@dataclass(frozen=True)
class TimelineRow:
    """An object as the timeline names it."""

    obj_id: int
    name: str
    rgba: tuple[float, float, float, float]


class TimelineView(QWidget):
    """Paints object rows of frame states; a click in a row's track jumps to that
    frame, a click on its name selects the object."""

    frame_clicked = QtSignal(int)
    object_clicked = QtSignal(int)

    def __init__(self, states: TrackStates, parent: QWidget | None = None):
        super().__init__(parent)
        self._states = states
        self._rows: list[TimelineRow] = []
        self._hidden: set[int] = set()
        self.current_frame = 0
        self.current_object: int | None = None
        self._image: QImage | None = None
        self._pixels: np.ndarray | None = None  # keeps the QImage's buffer alive
        self.setMouseTracking(True)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setMinimumWidth(LABEL_WIDTH + 100)

    # ----------------------------------------------------------------- model

    def set_states(self, states: TrackStates) -> None:
        self._states = states
        self.states_changed()

    def set_rows(self, rows: Sequence[TimelineRow], hidden: set[int] = frozenset()) -> None:
        self._rows = list(rows)
        self._hidden = set(hidden)
        self.setFixedHeight(RULER_HEIGHT + ROW_HEIGHT * max(len(self._rows), 1) + LEGEND_HEIGHT)
        self.states_changed()

    def states_changed(self) -> None:
        """The states changed: draw the rows again at the next paint."""
        self._image = None
        self.update()

    def set_current(self, frame: int, obj_id: int | None) -> None:
        if (frame, obj_id) != (self.current_frame, self.current_object):
            self.current_frame, self.current_object = frame, obj_id
            self.update()

    # -------------------------------------------------------------- geometry

    def track_rect(self) -> QRect:
        """Where the frames are drawn: right of the names, between ruler and legend."""
        height = ROW_HEIGHT * len(self._rows)
        width = max(self.width() - LABEL_WIDTH - MARGIN, 1)
        return QRect(LABEL_WIDTH, RULER_HEIGHT, width, height)

    def frame_at(self, x: float) -> int:
        track = self.track_rect()
        n_frames = self._states.n_frames
        frame = int((x - track.left()) * n_frames // track.width())
        return min(max(frame, 0), n_frames - 1)

    def x_of(self, frame: int) -> int:
        track = self.track_rect()
        return track.left() + int((frame + 0.5) * track.width() / self._states.n_frames)

    def row_at(self, y: float) -> TimelineRow | None:
        index = int((y - RULER_HEIGHT) // ROW_HEIGHT)
        inside = y >= RULER_HEIGHT and 0 <= index < len(self._rows)
        return self._rows[index] if inside else None

    # -------------------------------------------------------------- painting

    def _track_image(self, width: int) -> QImage:
        if self._image is None or self._image.width() != width:
            rows = [self._states.states(row.obj_id) for row in self._rows]
            binned = binned_states(np.array(rows).reshape(len(rows), -1), width)
            pixels = np.ascontiguousarray(STATE_COLORS[binned])
            for index, row in enumerate(self._rows):
                if row.obj_id in self._hidden:
                    pixels[index, :, 3] = 80
            self._pixels = pixels
            height = len(rows)
            self._image = QImage(
                pixels.data, width, height, 4 * width, QImage.Format.Format_RGBA8888
            )
        return self._image

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        palette = self.palette()
        painter.fillRect(self.rect(), palette.window())
        track = self.track_rect()
        self._paint_ruler(painter, track)
        if self._rows:
            painter.drawImage(track, self._track_image(track.width()))
            painter.setPen(self.palette().window().color())  # a line between rows
            for index in range(1, len(self._rows)):
                y = RULER_HEIGHT + index * ROW_HEIGHT
                painter.drawLine(track.left(), y, track.right(), y)
        for index, row in enumerate(self._rows):
            self._paint_label(painter, index, row)
        x = self.x_of(self.current_frame)
        painter.setPen(QPen(QColor(0, 229, 255), 1))
        painter.drawLine(x, RULER_HEIGHT - 4, x, track.bottom())
        self._paint_legend(painter, track.bottom() + 2)
        painter.end()

    def _paint_ruler(self, painter: QPainter, track: QRect) -> None:
        painter.setPen(self.palette().text().color())
        n_frames = self._states.n_frames
        for frame in sorted({0, n_frames // 4, n_frames // 2, 3 * n_frames // 4, n_frames - 1}):
            left = min(max(self.x_of(frame) - 40, LABEL_WIDTH - 40), self.width() - 80)
            box = QRect(left, 0, 80, RULER_HEIGHT)
            painter.drawText(box, Qt.AlignmentFlag.AlignCenter, str(frame))
        painter.drawText(
            QRect(MARGIN, 0, LABEL_WIDTH - MARGIN, RULER_HEIGHT),
            Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
            f"frame {self.current_frame}",
        )

    def _paint_label(self, painter: QPainter, index: int, row: TimelineRow) -> None:
        top = RULER_HEIGHT + index * ROW_HEIGHT
        if row.obj_id == self.current_object:
            painter.fillRect(QRect(0, top, LABEL_WIDTH, ROW_HEIGHT), self.palette().highlight())
        color = QColor.fromRgbF(*row.rgba[:3])
        painter.fillRect(QRect(MARGIN, top + 2, 10, ROW_HEIGHT - 4), color)
        text = painter.fontMetrics().elidedText(
            f"{row.obj_id} · {row.name}", Qt.TextElideMode.ElideRight, LABEL_WIDTH - 22
        )
        painter.setPen(self.palette().text().color())
        painter.drawText(
            QRect(18, top, LABEL_WIDTH - 20, ROW_HEIGHT),
            Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
            text,
        )

    def _paint_legend(self, painter: QPainter, top: int) -> None:
        x = LABEL_WIDTH
        metrics = painter.fontMetrics()
        painter.setPen(self.palette().text().color())
        for state in FrameState:
            painter.fillRect(QRect(x, top + 3, 10, 10), QColor(*STATE_COLORS[state]))
            name = STATE_NAMES[state]
            painter.drawText(QPoint(x + 13, top + 12), name)
            x += 13 + metrics.horizontalAdvance(name) + 10

    # ------------------------------------------------------------------ mouse

    def mousePressEvent(self, event: QMouseEvent) -> None:
        self._pick(event, press=True)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if event.buttons() & Qt.MouseButton.LeftButton:
            self._pick(event, press=False)

    def _pick(self, event: QMouseEvent, press: bool) -> None:
        position = event.position()
        if position.x() >= LABEL_WIDTH:
            if RULER_HEIGHT <= position.y() <= self.track_rect().bottom() + 1 or not press:
                self.frame_clicked.emit(self.frame_at(position.x()))
        elif press and (row := self.row_at(position.y())) is not None:
            self.object_clicked.emit(row.obj_id)

    def event(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.ToolTip:
            QToolTip.showText(event.globalPos(), self.describe(event.pos()), self)
            return True
        return super().event(event)

    def describe(self, pos: QPoint) -> str:
        """What the timeline shows under ``pos``, as a tooltip says it."""
        row = self.row_at(pos.y())
        if row is None or pos.x() < LABEL_WIDTH:
            return "" if row is None else f"{row.name} (object {row.obj_id})"
        frame = self.frame_at(pos.x())
        state = FrameState(self._states.states(row.obj_id)[frame])
        score = self._states.score(frame, row.obj_id)
        scored = f", score {score:.2f}" if score is not None else ""
        return f"{row.name}, frame {frame}: {STATE_NAMES[state]}{scored}"
