"""A GraphQL validation rule: refuse queries nested deeper than a limit.

The schema has cycles (a workflow's task, that task's workflows …), so a
short query text can ask for an answer that grows exponentially with its
depth. The rule measures each operation's depth, following fragments (with
a guard against fragment cycles, which graphql-core reports on its own) and
stopping its walk just past the limit, and reports one error naming both.
"""

from __future__ import annotations

from typing import Any

from graphql import (ASTValidationRule, FieldNode, FragmentSpreadNode, GraphQLError, InlineFragmentNode,
                     OperationDefinitionNode, SelectionSetNode)
from graphql.validation import ASTValidationContext

__all__ = ["depth_limit", "DEFAULT_MAX_DEPTH"]

DEFAULT_MAX_DEPTH = 10


def _depth(sel: SelectionSetNode | None, ctx: ASTValidationContext, level: int, seen: frozenset[str],
           stop: int) -> int:
    if sel is None or level > stop:
        return level
    best = level
    for node in sel.selections:
        if isinstance(node, FieldNode):
            below = _depth(node.selection_set, ctx, level + 1, seen, stop) if node.selection_set else level + 1
        elif isinstance(node, InlineFragmentNode):
            below = _depth(node.selection_set, ctx, level, seen, stop)
        elif isinstance(node, FragmentSpreadNode) and node.name.value not in seen:
            fragment = ctx.get_fragment(node.name.value)
            below = _depth(fragment.selection_set if fragment else None, ctx, level, seen | {node.name.value}, stop)
        else:
            continue
        best = max(best, below)
    return best


def depth_limit(max_depth: int = DEFAULT_MAX_DEPTH) -> type[ASTValidationRule]:
    class DepthLimit(ASTValidationRule):
        def enter_operation_definition(self, node: OperationDefinitionNode, *_: Any) -> None:
            depth = _depth(node.selection_set, self.context, 0, frozenset(), max_depth)
            if depth > max_depth:
                self.report_error(GraphQLError(f"query is nested deeper than {max_depth} levels", node))

    return DepthLimit
