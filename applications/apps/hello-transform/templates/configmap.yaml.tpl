apiVersion: v1
kind: ConfigMap
metadata:
  name: @APP_NAME@-content
  labels:
    app.kubernetes.io/name: @APP_NAME@
    app.kubernetes.io/managed-by: kubesync-transform
  annotations:
    kubesync.dev/content-hash: "@CONTENT_HASH@"
data:
  index.html: |
    <!doctype html>
    <html><body><h1>@GREETING@</h1><p>rendered by transform.sh</p></body></html>
