"""REST: teams, projects, task types, tasks, assignment, review, time reports."""

from __future__ import annotations

import csv
import io
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from collab.auth import Access
from collab.errors import BadRequest, Forbidden, InvalidJSON, InvalidTask, NotFound
from collab.http.annotations import require_access
from collab.http.common import (
    JSON,
    caller,
    field_int,
    field_str,
    field_time,
    path_int,
    query_int,
    read_body,
    read_json,
    services,
    storable,
)
from collab.store import work
from collab.work import flow
from collab.work.access import Actor, actor
from collab.work.specs import TaskSpec, tasks_from_csv, tasks_from_json

MODES = ("skeleton", "volume", "proofreading")
#: Largest task batch body (10,000 tasks as JSON are ~2 MB).
MAX_TASK_BODY = 64 * 1024 * 1024


async def _actor(request: Request) -> Actor:
    who = await caller(request)
    async with services(request).pool.acquire() as db:
        return await actor(db, who)


def _bool(body: dict[str, Any], name: str) -> bool | None:
    value = body.get(name)
    if value is not None and not isinstance(value, bool):
        raise InvalidJSON(f"{name!r} must be true or false")
    return value


def _priority(body: dict[str, Any], required: bool) -> int | None:
    value = body.get("priority")
    if value is None:
        if required:
            return 0
        return None
    if isinstance(value, bool) or not isinstance(value, int) or abs(value) > 1_000_000:
        raise InvalidJSON("'priority' must be an integer between -1000000 and 1000000")
    return value


# -- teams --------------------------------------------------------------------------


async def create_team(request: Request) -> JSON:
    me = await _actor(request)
    if not me.is_admin:
        raise Forbidden("only admins create teams")
    body = await read_json(request)
    name = field_str(body, "name", max_len=200) or ""
    async with services(request).pool.acquire() as db, db.transaction():
        team_id = await work.create_team(db, name)
        await work.audit(db, me.user_id, "team", team_id, "create", details={"name": name})
    return JSON({"id": team_id, "name": name}, status_code=201)


async def list_teams(request: Request) -> JSON:
    me = await _actor(request)
    me.require_user()
    async with services(request).pool.acquire() as db:
        teams = await work.list_teams(db, None if me.is_admin else sorted(me.teams))
    return JSON({"teams": teams})


async def get_team(request: Request) -> JSON:
    me = await _actor(request)
    team_id = path_int(request, "team_id")
    if not me.is_admin and team_id not in me.teams:
        raise Forbidden(f"you are not in team {team_id}")
    async with services(request).pool.acquire() as db:
        return JSON(await work.get_team(db, team_id))


# -- projects -----------------------------------------------------------------------


async def create_project(request: Request) -> JSON:
    me = await _actor(request)
    body = await read_json(request)
    name = field_str(body, "name", max_len=200) or ""
    team = field_int(body, "team", minimum=1) or 0
    priority = _priority(body, True) or 0
    paused = _bool(body, "paused") or False
    minutes = field_int(body, "expectedMinutes", required=False, minimum=0)
    async with services(request).pool.acquire() as db, db.transaction():
        if await work.missing_teams(db, [team]):
            raise NotFound(f"no team {team}")
        me.require_manager_of(team, "creating a project")
        project_id = await work.create_project(
            db, name, team, priority, paused, minutes, me.user_id
        )
        await work.audit(
            db,
            me.user_id,
            "project",
            project_id,
            "create",
            details={"team": team, "priority": priority, "paused": paused},
        )
        return JSON(await work.get_project(db, project_id), status_code=201)


async def update_project(request: Request) -> JSON:
    me = await _actor(request)
    project_id = path_int(request, "project_id")
    body = await read_json(request)
    paused = _bool(body, "paused")
    priority = _priority(body, False)
    async with services(request).pool.acquire() as db, db.transaction():
        row = await work.project_row(db, project_id)
        me.require_manager_of(row["team_id"], "changing a project")
        await work.update_project(db, project_id, paused, priority)
        await work.audit(
            db,
            me.user_id,
            "project",
            project_id,
            "update",
            details={k: body[k] for k in ("paused", "priority") if k in body},
        )
        return JSON(await work.get_project(db, project_id))


async def get_project(request: Request) -> JSON:
    me = await _actor(request)
    project_id = path_int(request, "project_id")
    async with services(request).pool.acquire() as db:
        row = await work.project_row(db, project_id)
        me.require_reader_of(row["team_id"], "reading a project")
        return JSON(await work.get_project(db, project_id))


async def list_projects(request: Request) -> JSON:
    me = await _actor(request)
    me.require_user()
    teams = None if me.is_admin else sorted(me.managed | me.reviewed)
    async with services(request).pool.acquire() as db:
        return JSON({"projects": await work.list_projects(db, teams)})


# -- task types -----------------------------------------------------------------------


async def create_task_type(request: Request) -> JSON:
    me = await _actor(request)
    if not (me.is_admin or me.is_manager):
        raise Forbidden("creating a task type needs an admin or a manager")
    body = await read_json(request)
    name = field_str(body, "name", max_len=200) or ""
    description = body.get("description", "")
    if not isinstance(description, str) or len(description) > 10_000:
        raise InvalidJSON("'description' must be a string of at most 10000 characters")
    storable("description", description)
    modes = body.get("modes")
    if not isinstance(modes, list) or not modes or any(m not in MODES for m in modes):
        raise InvalidJSON(f"'modes' must be a non-empty list of {', '.join(MODES)}")
    settings = body.get("settings", {})
    if not isinstance(settings, dict):
        raise InvalidJSON('\'settings\' must be an object (e.g. {"allowedMags": ["1", "2"]})')
    storable("settings", settings)
    async with services(request).pool.acquire() as db, db.transaction():
        type_id = await work.create_task_type(
            db, name, description, sorted(set(modes)), settings, me.user_id
        )
        await work.audit(db, me.user_id, "tasktype", type_id, "create")
        return JSON(await work.get_task_type(db, type_id), status_code=201)


async def get_task_type(request: Request) -> JSON:
    me = await _actor(request)
    me.require_user()
    async with services(request).pool.acquire() as db:
        return JSON(await work.get_task_type(db, path_int(request, "type_id")))


async def list_task_types(request: Request) -> JSON:
    me = await _actor(request)
    me.require_user()
    async with services(request).pool.acquire() as db:
        return JSON({"taskTypes": await work.list_task_types(db)})


# -- tasks ---------------------------------------------------------------------------


async def _check_specs(db: Any, me: Actor, specs: list[TaskSpec]) -> None:
    """Every reference exists, the caller manages every project's team, positions lie
    inside the dataset. The first broken element raises with its index."""
    projects, types, datasets, bases = await work.check_refs(db, specs)
    boxes = await work.dataset_boxes(db, sorted(datasets))
    for i, spec in enumerate(specs):
        where = f"tasks[{i}]"
        if spec.project not in projects:
            raise InvalidTask(f"{where}: no project {spec.project}", index=i)
        if not me.manages(projects[spec.project]):
            raise Forbidden(
                f"{where}: creating tasks in project {spec.project} needs a manager of its team"
            )
        if spec.task_type not in types:
            raise InvalidTask(f"{where}: no task type {spec.task_type}", index=i)
        if spec.base_annotation is not None and spec.base_annotation not in bases:
            raise InvalidTask(f"{where}: no annotation {spec.base_annotation}", index=i)
        if spec.dataset is not None:
            if spec.dataset not in datasets:
                raise InvalidTask(f"{where}: no registered dataset {spec.dataset!r}", index=i)
            if not _inside(spec.position, boxes[spec.dataset]):
                raise InvalidTask(
                    f"{where}: position {list(spec.position)} is outside dataset {spec.dataset!r}",
                    index=i,
                )


def _inside(position: tuple[int, int, int], boxes: list[Any]) -> bool:
    for box in boxes:
        lo, size = box["topLeft"], box["size"]
        if all(lo[k] <= position[k] < lo[k] + size[k] for k in range(3)):
            return True
    return False


async def create_tasks(request: Request) -> JSON:
    me = await _actor(request)
    me.require_user()
    kind = request.headers.get("content-type", "").split(";")[0].strip()
    body = await read_body(request, MAX_TASK_BODY)
    if kind == "text/csv":
        try:
            text = body.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise InvalidTask("row 1: the CSV is not UTF-8", index=0) from None
        specs, as_list = tasks_from_csv(text), True
    else:
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise InvalidJSON(f"body is not JSON: {exc}") from None
        specs, as_list = tasks_from_json(parsed)
    async with services(request).pool.acquire() as db, db.transaction():
        await _check_specs(db, me, specs)
        ids = await work.create_tasks(db, specs, me.user_id)
        await work.audit(
            db,
            me.user_id,
            "task",
            ids[0],
            "create",
            details={"count": len(ids), "first": ids[0], "last": ids[-1]},
        )
    if as_list:
        return JSON({"ids": ids}, status_code=201)
    return JSON({"id": ids[0], "ids": ids}, status_code=201)


async def list_tasks(request: Request) -> JSON:
    me = await _actor(request)
    project_id = query_int(request, "project", None, 1, 2**62)
    if project_id is None:
        raise BadRequest("?project= is required")
    limit = query_int(request, "limit", 1000, 1, 10_000) or 1000
    after = query_int(request, "after", None, 0, 2**62)
    async with services(request).pool.acquire() as db:
        row = await work.project_row(db, project_id)
        me.require_reader_of(row["team_id"], "reading tasks")
        tasks = await work.list_tasks(db, project_id, limit, after)
    return JSON({"tasks": tasks, "next": tasks[-1]["id"] if len(tasks) == limit else None})


async def get_task(request: Request) -> JSON:
    me = await _actor(request)
    task_id = path_int(request, "task_id")
    async with services(request).pool.acquire() as db:
        task = await work.get_task(db, task_id)
        team = (await work.project_row(db, task["project"]))["team_id"]
        me.require_reader_of(team, "reading a task")
    return JSON(task)


async def next_task(request: Request) -> JSON:
    return JSON(
        await flow.take_next(services(request).pool, await caller(request), services(request).kinds)
    )


# -- instances --------------------------------------------------------------------------


async def get_instance(request: Request) -> JSON:
    me = await _actor(request)
    instance_id = path_int(request, "instance_id")
    async with services(request).pool.acquire() as db:
        row = await work.instance_row(db, instance_id)
        if not (me.reads_work_of(row["team_id"]) or row["annotator_id"] == me.user_id):
            raise Forbidden(
                "reading an instance needs its annotator, or an admin, manager or reviewer of its team"
            )
        trail = await work.audit_trail(db, "instance", instance_id)
    return JSON({**work.instance_json(row), "audit": trail})


async def assign_instance(request: Request) -> JSON:
    me = await _actor(request)
    body = await read_json(request)
    user = field_int(body, "user", minimum=1) or 0
    return JSON(
        await flow.assign(
            services(request).pool,
            me,
            path_int(request, "instance_id"),
            user,
            services(request).kinds,
        )
    )


def _reason(body: dict[str, Any], required: bool = False) -> str | None:
    return field_str(body, "reason", required=required, max_len=5000)


async def _with_reason(request: Request, action: Any) -> JSON:
    """A manager's action on an instance, with an optional reason."""
    me = await _actor(request)
    body = await read_json(request)
    instance_id = path_int(request, "instance_id")
    return JSON(await action(services(request).pool, me, instance_id, _reason(body)))


async def cancel_instance(request: Request) -> JSON:
    return await _with_reason(request, flow.cancel)


async def reset_instance(request: Request) -> JSON:
    return await _with_reason(request, flow.reset)


async def finish(request: Request) -> JSON:
    me = await _actor(request)
    return JSON(await flow.finish(services(request).pool, me, path_int(request, "annotation_id")))


async def review(request: Request) -> JSON:
    me = await _actor(request)
    body = await read_json(request)
    decision = body.get("decision")
    if decision not in ("accept", "reject"):
        raise InvalidJSON("'decision' must be 'accept' or 'reject'")
    reason = _reason(body, required=decision == "reject")
    return JSON(
        await flow.review(
            services(request).pool, me, path_int(request, "annotation_id"), decision, reason
        )
    )


async def _comment_access(request: Request, annotation_id: int) -> None:
    await require_access(request, await caller(request), annotation_id, Access.READ)


async def add_comment(request: Request) -> JSON:
    me = await _actor(request)
    user = me.require_user()
    annotation_id = path_int(request, "annotation_id")
    await _comment_access(request, annotation_id)
    body = await read_json(request)
    text = field_str(body, "text", max_len=10_000) or ""
    position = body.get("position")
    if position is not None and (
        not isinstance(position, list)
        or len(position) != 3
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in position)
    ):
        raise InvalidJSON("'position' must be [x, y, z] integers")
    async with services(request).pool.acquire() as db:
        comment = await work.add_comment(db, annotation_id, user, text, position)
    return JSON(comment, status_code=201)


async def list_comments(request: Request) -> JSON:
    annotation_id = path_int(request, "annotation_id")
    await _comment_access(request, annotation_id)
    async with services(request).pool.acquire() as db:
        return JSON({"comments": await work.comments(db, annotation_id)})


# -- time ------------------------------------------------------------------------------


async def time_report(request: Request) -> Response:
    me = await _actor(request)
    user_id = me.require_user()
    by = request.query_params.get("by", "user")
    if by not in work.TIME_GROUPS:
        raise BadRequest(f"?by= must be one of {', '.join(work.TIME_GROUPS)}")
    user = query_int(request, "user", None, 1, 2**62)
    project = query_int(request, "project", None, 1, 2**62)
    task = query_int(request, "task", None, 1, 2**62)
    idle = query_int(request, "idle", int(services(request).settings.idle_seconds), 1, 86_400)
    times = {k: field_time(dict(request.query_params), k) for k in ("from", "to")}
    teams: list[int] | None = None
    async with services(request).pool.acquire() as db:
        if project is not None:
            row = await work.project_row(db, project)
            if not me.manages(row["team_id"]) and user != user_id:
                raise Forbidden(f"time of project {project} needs a manager of its team")
        if not me.is_admin:
            if me.is_manager and user != user_id:
                teams = sorted(me.managed)
            elif user is None:
                user = user_id
            elif user != user_id:
                raise Forbidden("you may read your own time only")
        rows = await work.time_report(
            db,
            by,
            float(idle or 0),
            user=user,
            project=project,
            task=task,
            teams=teams,
            since=times["from"],
            until=times["to"],
        )
    if request.query_params.get("format") == "csv":
        out = io.StringIO()
        columns = [*work.TIME_COLUMNS[by], "seconds", "updates"]
        writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return Response(
            out.getvalue(),
            media_type="text/csv",
            headers={"content-disposition": f'attachment; filename="time-by-{by}.csv"'},
        )
    return JSON({"by": by, "idleSeconds": idle, "rows": rows})


routes = [
    Route("/api/teams", create_team, methods=["POST"]),
    Route("/api/teams", list_teams, methods=["GET"]),
    Route("/api/teams/{team_id}", get_team, methods=["GET"]),
    Route("/api/projects", create_project, methods=["POST"]),
    Route("/api/projects", list_projects, methods=["GET"]),
    Route("/api/projects/{project_id}", get_project, methods=["GET"]),
    Route("/api/projects/{project_id}", update_project, methods=["PATCH"]),
    Route("/api/tasktypes", create_task_type, methods=["POST"]),
    Route("/api/tasktypes", list_task_types, methods=["GET"]),
    Route("/api/tasktypes/{type_id}", get_task_type, methods=["GET"]),
    Route("/api/tasks", create_tasks, methods=["POST"]),
    Route("/api/tasks", list_tasks, methods=["GET"]),
    Route("/api/tasks/next", next_task, methods=["POST"]),
    Route("/api/tasks/{task_id}", get_task, methods=["GET"]),
    Route("/api/instances/{instance_id}", get_instance, methods=["GET"]),
    Route("/api/instances/{instance_id}/assign", assign_instance, methods=["POST"]),
    Route("/api/instances/{instance_id}/cancel", cancel_instance, methods=["POST"]),
    Route("/api/instances/{instance_id}/reset", reset_instance, methods=["POST"]),
    Route("/api/annotations/{annotation_id}/finish", finish, methods=["POST"]),
    Route("/api/annotations/{annotation_id}/review", review, methods=["POST"]),
    Route("/api/annotations/{annotation_id}/comments", add_comment, methods=["POST"]),
    Route("/api/annotations/{annotation_id}/comments", list_comments, methods=["GET"]),
    Route("/api/reports/time", time_report, methods=["GET"]),
]
