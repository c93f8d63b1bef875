apiVersion: apps/v1
kind: Deployment
metadata:
  name: @APP_NAME@
  labels:
    app.kubernetes.io/name: @APP_NAME@
    app.kubernetes.io/managed-by: kubesync-transform
spec:
  replicas: @REPLICAS@
  selector:
    matchLabels:
      app.kubernetes.io/name: @APP_NAME@
  template:
    metadata:
      labels:
        app.kubernetes.io/name: @APP_NAME@
      annotations:
        # a new hash rolls the pods when the page changes
        kubesync.dev/content-hash: "@CONTENT_HASH@"
    spec:
      containers:
        - name: nginx
          image: @IMAGE@
          ports:
            - name: http
              containerPort: 80
          readinessProbe:
            httpGet:
              path: /
              port: http
            periodSeconds: 5
          resources:
            requests:
              cpu: 10m
              memory: 16Mi
            limits:
              memory: 64Mi
          volumeMounts:
            - name: content
              mountPath: /usr/share/nginx/html
              readOnly: true
      volumes:
        - name: content
          configMap:
            name: @APP_NAME@-content
---
apiVersion: v1
kind: Service
metadata:
  name: @APP_NAME@
  labels:
    app.kubernetes.io/name: @APP_NAME@
    app.kubernetes.io/managed-by: kubesync-transform
spec:
  selector:
    app.kubernetes.io/name: @APP_NAME@
  ports:
    - name: http
      port: 80
      targetPort: http
