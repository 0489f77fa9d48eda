"""The OpenAPI document served at ``/api/openapi.json`` (docs/api.md has the prose)."""

from __future__ import annotations

from typing import Any

_ERR = {"$ref": "#/components/schemas/Error"}


def _op(
    summary: str, ok: int = 200, body: dict[str, Any] | None = None, params: list[str] | None = None
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "security": [{"bearer": []}],
        "responses": {
            str(ok): {"description": "success", "content": {"application/json": {}}},
            "4XX": {"description": "error", "content": {"application/json": {"schema": _ERR}}},
        },
    }
    if body:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    if params:
        op["parameters"] = [
            {"name": p, "in": "path", "required": True, "schema": {"type": "integer"}}
            for p in params
        ]
    return op


def _obj(**props: Any) -> dict[str, Any]:
    return {"type": "object", "properties": props}


S, INT = {"type": "string"}, {"type": "integer"}
A = ["annotation_id"]

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "collab", "version": "0.1.0"},
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Error": _obj(error=_obj(code=S, message=S)),
        },
    },
    "paths": {
        "/healthz": {
            "get": {
                "summary": "200 once the database is reachable",
                "responses": {"200": {"description": "ok"}},
            }
        },
        "/metrics": {
            "get": {"summary": "Prometheus text", "responses": {"200": {"description": "ok"}}}
        },
        "/api/users": {
            "post": _op(
                "create a user (admin)",
                201,
                _obj(name=S, email=S, roles={"type": "array", "items": S}),
            )
        },
        "/api/users/me": {"get": _op("the caller")},
        "/api/users/{user_id}": {
            "get": _op("a user", params=["user_id"]),
            "patch": _op("teams, experiences, roles", params=["user_id"]),
        },
        "/api/users/{user_id}/tokens": {
            "post": _op("new token", 201, _obj(label=S, expires=S), ["user_id"])
        },
        "/api/tokens/{token_id}": {"delete": _op("revoke a token", params=["token_id"])},
        "/api/annotations": {
            "post": _op("create an annotation", 201, _obj(name=S, dataset=S)),
            "get": _op("annotations the caller can read"),
        },
        "/api/annotations/{annotation_id}": {"get": _op("one annotation", params=A)},
        "/api/annotations/{annotation_id}/grants": {
            "post": _op("grant editor/viewer", 201, _obj(user=INT, role=S), A)
        },
        "/api/annotations/{annotation_id}/grants/{user_id}": {
            "delete": _op("remove a grant", params=[*A, "user_id"])
        },
        "/api/annotations/{annotation_id}/links": {
            "post": _op("sharing token", 201, _obj(access=S, expires=S), A)
        },
        "/api/annotations/{annotation_id}/versions": {
            "get": _op("version history, newest first", params=A)
        },
        "/api/annotations/{annotation_id}/versions/{version}": {
            "get": _op("document at a version", params=[*A, "version"])
        },
        "/api/annotations/{annotation_id}/restore": {
            "post": _op("restore a version", 200, _obj(version=INT, doc=S), A)
        },
        "/api/annotations/{annotation_id}/revert": {
            "post": _op("undo one version", 200, _obj(version=INT, doc=S), A)
        },
        "/api/annotations/{annotation_id}/nml": {
            "post": _op(
                "merge an NML or WEBKNOSSOS zip into the skeleton; a zip's volume layers "
                "into the segmentation (raw body)",
                params=A,
            ),
            "get": _op(
                "the skeleton as NML (?format=zip: with a zarr3 data zip per volume layer)",
                params=A,
            ),
        },
        "/api/annotations/{annotation_id}/skeleton": {"get": _op("skeleton summary", params=A)},
        "/api/annotations/{annotation_id}/skeleton/lengths": {
            "get": _op("path length per tree, nm", params=A)
        },
        "/api/annotations/{annotation_id}/skeleton/nodes": {
            "get": _op("nodes in a box (?box=x,y,z,w,h,d)", params=A)
        },
        "/api/annotations/{annotation_id}/skeleton/nodes/{node_id}/tree": {
            "get": _op("the tree of a node", params=A)
        },
        "/api/annotations/{annotation_id}/skeleton/path": {
            "get": _op("shortest path (?from=&to=)", params=A)
        },
        "/api/annotations/{annotation_id}/skeleton/diff": {
            "get": _op("diff between versions (?from=&to=)", params=A)
        },
        "/api/annotations/{annotation_id}/segment-ids": {
            "post": _op("a block of new segment ids", 201, _obj(layer=S, count=INT), A)
        },
        "/api/annotations/{annotation_id}/volume/{layer}/{mag}/{x}/{y}/{z}": {
            "get": _op("a 32³ brick of the annotation's volume layer, octet-stream (?version=)")
        },
        "/api/annotations/{annotation_id}/volume/{layer}/segments/{segment}": {
            "get": _op("a segment's voxel count and box in the volume layer (?mag=&version=)")
        },
        "/api/annotations/{annotation_id}/volume/{layer}/merge": {
            "post": _op("merge two agglomerates (an edge a-b)", 201, _obj(a=INT, b=INT), A)
        },
        "/api/annotations/{annotation_id}/volume/{layer}/split": {
            "post": _op("split an agglomerate by the minimum cut between sources and sinks", 201)
        },
        "/api/annotations/{annotation_id}/volume/{layer}/agglomerates": {
            "post": _op("the agglomerate of each supervoxel named, in the editable mapping")
        },
        "/api/annotations/{annotation_id}/volume/{layer}/agglomerates/{agglomerate}": {
            "get": _op("an agglomerate of the editable mapping: supervoxels, edges, affinities")
        },
        "/api/annotations/{annotation_id}/volume/{layer}/connectome": {
            "get": _op("an agglomerate's synapses and partners (?segment= or ?agglomerate=)")
        },
        "/api/teams": {
            "post": _op("create a team (admin)", 201, _obj(name=S)),
            "get": _op("teams"),
        },
        "/api/teams/{team_id}": {"get": _op("a team and its members")},
        "/api/projects": {
            "post": _op(
                "create a project (admin, team manager)",
                201,
                _obj(
                    name=S, team=INT, priority=INT, paused={"type": "boolean"}, expectedMinutes=INT
                ),
            ),
            "get": _op("projects the caller manages or reviews"),
        },
        "/api/projects/{project_id}": {
            "get": _op("a project with instance counts"),
            "patch": _op(
                "pause, resume, reprioritise", 200, _obj(paused={"type": "boolean"}, priority=INT)
            ),
        },
        "/api/tasktypes": {
            "get": _op("every task type"),
            "post": _op(
                "create a task type",
                201,
                _obj(name=S, description=S, modes={"type": "array", "items": S}),
            ),
        },
        "/api/tasktypes/{type_id}": {"get": _op("a task type")},
        "/": {"get": _op("the browser client's page (text/html; docs/client.md)")},
        "/annotations/{annotation_id}": {
            "get": _op("the browser client's page, opening that annotation (text/html)")
        },
        "/api/tasks": {
            "post": _op("create tasks: one object, a list, or text/csv; all or nothing", 201),
            "get": _op("tasks of ?project="),
        },
        "/api/tasks/next": {"post": _op("the caller's next task instance (annotators)")},
        "/api/tasks/{task_id}": {"get": _op("a task and its instances")},
        "/api/instances/{instance_id}": {"get": _op("an instance and its audit trail")},
        "/api/instances/{instance_id}/assign": {
            "post": _op("assign or reassign (managers)", 200, _obj(user=INT))
        },
        "/api/instances/{instance_id}/cancel": {
            "post": _op("cancel (managers)", 200, _obj(reason=S))
        },
        "/api/instances/{instance_id}/reset": {
            "post": _op("back to open (managers)", 200, _obj(reason=S))
        },
        "/api/annotations/{annotation_id}/finish": {
            "post": _op("finish (its annotator)", params=A)
        },
        "/api/annotations/{annotation_id}/review": {
            "post": _op("accept or reject (team reviewers)", 200, _obj(decision=S, reason=S), A)
        },
        "/api/annotations/{annotation_id}/comments": {
            "post": _op("a review comment", 201, _obj(text=S), A),
            "get": _op("review comments", params=A),
        },
        "/api/reports/time": {
            "get": _op("active editing time (?by=user|task|project|day|annotation&format=csv)")
        },
        "/api/datasets": {
            "post": _op("register a dataset (admin, manager)", 201, _obj(name=S, url=S)),
            "get": _op("registered datasets"),
        },
        "/api/datasets/{dataset}": {"get": _op("a dataset's metadata")},
        "/api/datasets/{dataset}/synapses": {"get": _op("the dataset's synapses.json")},
        "/api/datasets/{dataset}/layers/{layer}/mags/{mag}/bricks/{x}/{y}/{z}": {
            "get": _op("one 32³ brick, octet-stream, x fastest (?mapping=)")
        },
        "/api/datasets/{dataset}/layers/{layer}/segments/at": {
            "get": _op("segment id at ?x=&y=&z= (mag-1 voxels)")
        },
        "/api/datasets/{dataset}/layers/{layer}/segments/{segment}": {
            "get": _op("voxel count and bounding box of a segment (?mag=&mapping=)")
        },
        "/api/datasets/{dataset}/layers/{layer}/mappings/{mapping}": {
            "get": _op("a supervoxel→agglomerate mapping as JSON")
        },
        "/api/datasets/{dataset}/layers/{layer}/agglomerates/{mapping}": {
            "get": _op("an agglomerate attachment's counts (supervoxels, agglomerates, edges)")
        },
        "/api/datasets/{dataset}/layers/{layer}/agglomerates/{mapping}/{agglomerate}": {
            "get": _op("one agglomerate's graph: supervoxels, edges, affinities, positions")
        },
    },
}
