"""The object table: one row per object (colour and visibility, id, name, class, frames
with a mask, prompted frames). Selecting a row makes its object the current one; names
and classes are edited in place; Delete removes, H hides or shows the selected object.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from qtpy.QtCore import Qt
from qtpy.QtCore import Signal as QtSignal
from qtpy.QtGui import QColor, QKeyEvent
from qtpy.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem

COLUMNS = ("", "id", "name", "class", "masks", "prompts")
VISIBLE, ID, NAME, CLASS, MASKS, PROMPTS = range(len(COLUMNS))
TOOLTIPS = (
    "The object's colour; untick to hide it (H)",
    "The object id: its value in the masks layer",
    "Double-click or F2 to rename",
    "Double-click or F2 to set the class exports use",
    "Frames where it has a mask",
    "Frames where it is prompted",
)


@dataclass(frozen=True)
class ObjectRow:
    """What the table shows of one object."""

    obj_id: int
    name: str
    category: str
    rgba: tuple[float, float, float, float]
    visible: bool
    masks: int
    prompts: int


class ObjectTable(QTableWidget):
    """The objects of an annotation, as rows the user selects, edits, hides and deletes."""

    #: The user selected an object.
    object_selected = QtSignal(int)
    #: The user gave an object a new name or class: ``(obj_id, name, class)``.
    object_renamed = QtSignal(int, str, str)
    #: The user hid (False) or showed (True) an object.
    visibility_changed = QtSignal(int, bool)
    #: The user asked to delete an object.
    delete_requested = QtSignal(int)

    def __init__(self, parent=None):
        super().__init__(0, len(COLUMNS), parent)
        self.setHorizontalHeaderLabels(COLUMNS)
        for column, tip in enumerate(TOOLTIPS):
            self.horizontalHeaderItem(column).setToolTip(tip)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setEditTriggers(
            QAbstractItemView.EditTrigger.DoubleClicked
            | QAbstractItemView.EditTrigger.EditKeyPressed
        )
        self.verticalHeader().setVisible(False)
        header = self.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(NAME, QHeaderView.ResizeMode.Stretch)
        self.setMinimumHeight(110)
        self._filling = False
        self.itemChanged.connect(self._on_item_changed)
        self.itemSelectionChanged.connect(self._on_selection)

    def show_objects(self, rows: Sequence[ObjectRow], current: int) -> None:
        """Show ``rows`` with the ``current`` object selected; cells being edited stay."""
        self._filling = True
        try:
            if self.rowCount() != len(rows):
                self.setRowCount(len(rows))
            for index, row in enumerate(rows):
                self._fill(index, row)
            ids = [row.obj_id for row in rows]
            if current in ids and self.current_id() != current:
                self.selectRow(ids.index(current))
        finally:
            self._filling = False

    def _fill(self, index: int, row: ObjectRow) -> None:
        swatch = self._item(index, VISIBLE, editable=False)
        swatch.setFlags(swatch.flags() | Qt.ItemFlag.ItemIsUserCheckable)
        swatch.setCheckState(Qt.CheckState.Checked if row.visible else Qt.CheckState.Unchecked)
        swatch.setData(Qt.ItemDataRole.DecorationRole, QColor.fromRgbF(*row.rgba[:3]))
        swatch.setData(Qt.ItemDataRole.UserRole, row.obj_id)
        values = {ID: str(row.obj_id), NAME: row.name, CLASS: row.category}
        values |= {MASKS: str(row.masks), PROMPTS: str(row.prompts)}
        for column, text in values.items():
            item = self._item(index, column, editable=column in (NAME, CLASS))
            if item.text() != text and not self._editing(index, column):
                item.setText(text)
            if column in (ID, MASKS, PROMPTS):
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)

    def _item(self, index: int, column: int, editable: bool) -> QTableWidgetItem:
        item = self.item(index, column)
        if item is None:
            item = QTableWidgetItem()
            flags = Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsEnabled
            if editable:
                flags |= Qt.ItemFlag.ItemIsEditable
            item.setFlags(flags)
            self.setItem(index, column, item)
        return item

    def _editing(self, index: int, column: int) -> bool:
        current = self.currentIndex()
        editing = self.state() == QAbstractItemView.State.EditingState
        return editing and (current.row(), current.column()) == (index, column)

    def obj_id(self, index: int) -> int | None:
        item = self.item(index, VISIBLE)
        return None if item is None else int(item.data(Qt.ItemDataRole.UserRole))

    def current_id(self) -> int | None:
        rows = self.selectionModel().selectedRows()
        return self.obj_id(rows[0].row()) if rows else None

    def _on_selection(self) -> None:
        obj_id = self.current_id()
        if not self._filling and obj_id is not None:
            self.object_selected.emit(obj_id)

    def _on_item_changed(self, item: QTableWidgetItem) -> None:
        if self._filling:
            return
        obj_id = self.obj_id(item.row())
        if item.column() == VISIBLE:
            self.visibility_changed.emit(obj_id, item.checkState() == Qt.CheckState.Checked)
        elif item.column() in (NAME, CLASS):
            name, category = (self.item(item.row(), c).text() for c in (NAME, CLASS))
            self.object_renamed.emit(obj_id, name.strip() or f"object {obj_id}", category.strip())

    def keyPressEvent(self, event: QKeyEvent) -> None:
        obj_id = self.current_id()
        editing = self.state() == QAbstractItemView.State.EditingState
        if obj_id is not None and not editing:
            if event.key() in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace):
                self.delete_requested.emit(obj_id)
                return
            if event.key() == Qt.Key.Key_H:
                swatch = self.item(self.currentRow(), VISIBLE)
                visible = swatch.checkState() != Qt.CheckState.Checked
                self.visibility_changed.emit(obj_id, visible)
                return
        super().keyPressEvent(event)
