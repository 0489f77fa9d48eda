// The REST API (docs/api.md): JSON in and out, errors as ApiError carrying
// the server's {"error": {"code", "message"}}.

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message)
  }
}

export interface Me {
  id?: number
  name?: string
  roles?: string[]
  link?: boolean
  annotation?: number
  access?: 'read' | 'write'
}

export interface AnnotationInfo {
  id: number
  name: string
  dataset: string | null
  owner: number
  created: string
  access?: 'read' | 'write' | 'owner'
  role?: string
  versions?: { skeleton: number; segmentation: number }
  task?: { instance: number; task: number; state: string } | null
}

export interface VersionInfo {
  version: number
  time: string
  author: number | null
  summary: Record<string, unknown>
}

export interface DatasetInfo {
  name: string
  voxelSize?: number[]
  layers?: { name: string; category: string }[]
  unavailable?: boolean
}

export class Api {
  constructor(readonly token: string) {}

  async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const response = await fetch(path, {
      method,
      headers: {
        authorization: `Bearer ${this.token}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    })
    const text = await response.text()
    const data = text ? JSON.parse(text) : null
    if (!response.ok) {
      const error = data?.error ?? {}
      throw new ApiError(response.status, error.code ?? 'error', error.message ?? response.statusText)
    }
    return data as T
  }

  me(): Promise<Me> {
    return this.call('GET', '/api/users/me')
  }

  annotations(): Promise<{ annotations: AnnotationInfo[] }> {
    return this.call('GET', '/api/annotations?limit=100')
  }

  annotation(id: number): Promise<AnnotationInfo> {
    return this.call('GET', `/api/annotations/${id}`)
  }

  createAnnotation(name: string, dataset: string | null): Promise<{ id: number }> {
    return this.call('POST', '/api/annotations', dataset ? { name, dataset } : { name })
  }

  datasets(): Promise<{ datasets: DatasetInfo[] }> {
    return this.call('GET', '/api/datasets')
  }

  nextTask(): Promise<{ task: number; instance: number; annotation: number }> {
    return this.call('POST', '/api/tasks/next')
  }

  finish(annotation: number): Promise<unknown> {
    return this.call('POST', `/api/annotations/${annotation}/finish`)
  }

  review(annotation: number, decision: 'accept' | 'reject', reason: string): Promise<unknown> {
    return this.call('POST', `/api/annotations/${annotation}/review`, { decision, reason })
  }

  versions(id: number, limit = 200): Promise<{ versions: VersionInfo[] }> {
    return this.call('GET', `/api/annotations/${id}/versions?doc=skeleton&limit=${limit}`)
  }
}
