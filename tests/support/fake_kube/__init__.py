"""A project-owned, in-memory Kubernetes API server for tests.

`FakeKubeServer` listens on 127.0.0.1 (ephemeral port, plain HTTP) in background
threads and speaks enough of the real protocol for kubectl 1.37 and the
`kubernetes` Python client (including `kubernetes.dynamic.DynamicClient`):

- discovery (/version, /api, /api/v1, /apis, /apis/<g>/<v>) and thin OpenAPI
  v2/v3 documents (modules `openapi`, `resources`);
- get/list/watch/create/update/patch/delete/deletecollection with label and
  field selectors, optimistic concurrency, dryRun=All, merge/strategic/JSON
  patches and server-side apply with managedFields and conflicts (`api`,
  `patching`, `store`);
- a Deployment/ReplicaSet controller plus a kubelet stand-in that makes pods
  Ready after `ready_delay` seconds once the Secrets their volumes need (unless
  `optional: true`) exist in their namespace, and failure injection (`controller`);
- a registry as the nodes see it (`registry_view`, `fake.registry`): pods report the
  imageID of the digest they pulled, the one pinned in their image reference or the one the
  view holds for the tag when they start (`fake.registry.push(tag, digest)` re-points a tag,
  as a re-push does).

Typical use, through the pytest plugin (`tests.support.fake_kube.plugin`):

    def test_deploy(fake_kube, kubectl):
        fake_kube.fail_image("registry/app:bad")      # pods never become Ready
        kubectl("apply", "--server-side", "--field-manager=me", "-f", path, check=True)
        assert fake_kube.get_object("deployments", "app")["status"]...

Known simplifications (deliberate; this is not a reimplementation):

- Authentication and authorization are off unless `enable_rbac()` is called: then bearer
  tokens (the kubeconfig's admin token, `service_account_token(ns, name)`) and RBAC over the
  stored Roles and RoleBindings, with resourceNames and the named `create` of server-side apply
  (module `rbac`; no ClusterRoles, no aggregation, no impersonation).
- No admission, TLS, protobuf or CBOR responses,
  aggregated discovery (plain APIGroupList is returned and kubectl falls back to
  legacy discovery), `limit`/`continue` paging, or subresources beyond status
  and scale (no logs/exec). Tables for `kubectl get` have the usual columns for
  Deployments, ReplicaSets, Pods, Services, ConfigMaps, Secrets and Namespaces,
  NAME/AGE for the rest.
  Protobuf request bodies are decoded only for Namespace, ConfigMap, Secret and
  ServiceAccount (what `kubectl create <kind>` sends); others get 415.
- OpenAPI schemas are stubs that preserve unknown fields: enough for kubectl's
  server-side apply, diff and validation checks. Client-side `kubectl apply`
  works but warns that it cannot compute the patch from the schema.
- Validation is shallow: names, namespace existence, a Deployment's selector,
  containers and replicas, and (with `fieldValidation=Strict`, which kubectl
  sends) unknown top-level and metadata fields only.
- Server-side apply tracks ownership per leaf field. Lists of maps merge by
  `name` (`containerPort`/`port` for ports, `mountPath`, `type` for conditions),
  other lists are atomic; conflicts compare leaf values only; status is never
  owned; fieldsV1 keys use only that one key field.
- Strategic merge patch uses the same list keys and supports `$patch: delete|replace`;
  other directives are ignored.
- `metadata.generation` bumps when anything outside metadata/status changes, for
  every kind. Status subresource writes replace the whole status.
- Watches replay from an in-memory history of 10,000 events (older
  resourceVersions get a 410 Expired ERROR event); an object that stops matching
  a label selector is not sent as DELETED; bookmarks are only sent to mark the end
  of `sendInitialEvents`.
- Deletion is immediate (no finalizers or grace periods); owner references and
  namespace deletion are garbage-collected synchronously.
- No Events are emitted, no scheduling or nodes exist (pods get nodeName
  "fake-node"), and HPAs, PDBs, NetworkPolicies, RBAC objects and Leases are
  stored but never acted upon.
- Every pod pulls its image afresh (as with `imagePullPolicy: Always` or a new node):
  there is no per-node image cache, so `IfNotPresent` never reuses stale bytes here.
- The Deployment controller surges 100%: the new ReplicaSet is scaled to the full
  replica count at once and old ones go to zero when it is fully available
  (Recreate scales old ones down first). minReadySeconds and maxSurge are ignored.
  Its Progressing condition follows the real controller's rules: a rollback to an
  existing ReplicaSet keeps the old condition (even ProgressDeadlineExceeded naming
  the failed ReplicaSet) until progress is seen, and the Deployment status lags the
  ReplicaSets by one reconcile pass; `scale_down_delay` widens that window.
  Durations from specs (progressDeadlineSeconds) are multiplied by `time_scale`
  (default 0.01: 600 s becomes 6 s).
"""

from .registry_view import RegistryView
from .server import FakeKubeServer, RequestRecord

__all__ = ["FakeKubeServer", "RegistryView", "RequestRecord"]
