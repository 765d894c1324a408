"""Kept for the modules not yet moved to exsync.state, where exsync's own tables are declared now
(drop it once nothing imports it)."""

from exsync.state.tables import StateTable, create_state_tables, text_column
from exsync.state.values import STATE_VALUES_TABLE, StateValues

__all__ = ["STATE_VALUES_TABLE", "StateTable", "StateValues", "create_state_tables", "text_column"]
