//! The emulator serves HorizontalPodAutoscalers at `autoscaling/v1` as well
//! as `autoscaling/v2` (stored as v2, converted as the real API server
//! does): an app declaring a v1 HPA syncs, reads back the same at v1, shows
//! the CPU target as a v2 metric, and a converged re-sync writes nothing.

mod sync_support;

use serde_json::Value;
use sync_support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_autoscaling_v1_hpa_syncs_and_converges() {
    let emu = emulator(fast_simulation()).await;
    let repo = Repo::new();
    repo.app(
        "scaled",
        "  destination: {namespace: hpa}\n  syncPolicy: {createNamespace: true, wait: {timeout: 20s}}\n",
    );
    repo.write("objects/scaled/web.yaml", &deployment("web", "nginx:1"));
    repo.write(
        "objects/scaled/hpa.yaml",
        "apiVersion: autoscaling/v1\nkind: HorizontalPodAutoscaler\nmetadata: {name: web}\nspec:\n  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}\n  minReplicas: 1\n  maxReplicas: 4\n  targetCPUUtilizationPercentage: 60\n",
    );
    let report = sync_repo(&repo, &emu).await;
    assert!(report.all_good(), "{report:#?}");

    let v1 = get(
        &emu,
        "/apis/autoscaling/v1/namespaces/hpa/horizontalpodautoscalers/web",
    )
    .await
    .expect("v1");
    assert_eq!(v1["apiVersion"], "autoscaling/v1");
    assert_eq!(v1["spec"]["targetCPUUtilizationPercentage"], 60);
    assert!(v1.pointer("/spec/metrics").is_none(), "{v1:#}");
    let v2 = get(
        &emu,
        "/apis/autoscaling/v2/namespaces/hpa/horizontalpodautoscalers/web",
    )
    .await
    .expect("v2");
    assert_eq!(
        v2.pointer("/spec/metrics/0/resource/target/averageUtilization")
            .and_then(Value::as_i64),
        Some(60),
        "{v2:#}"
    );
    assert!(v2.pointer("/spec/targetCPUUtilizationPercentage").is_none());

    let before = writes(&emu);
    let again = sync_repo(&repo, &emu).await;
    assert!(again.all_good(), "{again:#?}");
    assert_eq!(writes(&emu), before, "a converged re-sync writes nothing");
}
