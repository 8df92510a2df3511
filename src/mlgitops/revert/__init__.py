"""Alert -> revert: a branch restoring the last good release, and its PR body.

Argo CD refuses a rollback while auto-sync is on (argo-cd#2441), so the rollback is a commit
merged to the synced branch. It restores a release, not a patch: one commit on top of the base
whose tree is exactly the tree of the last commit on which the restored release was current, so
it never conflicts, whatever came after. This room prepares it without touching that branch or
the user's work tree: `plan` finds the release to restore, its commit and what restoring it takes
back (Git objects only), `branch` makes the commit with `git commit-tree` and creates the branch,
`prbody` writes the pull request's Markdown, `alerts` reads Alertmanager's webhook payload and
`server` is the webhook receiver behind `mlgitops revert serve`.
"""
