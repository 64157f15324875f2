CREATE TABLE "alerts" (
	"fleet_id" text NOT NULL,
	"alert_id" text NOT NULL,
	"drone_id" text NOT NULL,
	"kind" text NOT NULL,
	"severity" text NOT NULL,
	"message" text NOT NULL,
	"value" double precision,
	"raised_at" timestamp with time zone NOT NULL,
	"cleared_at" timestamp with time zone,
	"updated_at" timestamp with time zone NOT NULL,
	CONSTRAINT "alerts_fleet_id_alert_id_pk" PRIMARY KEY("fleet_id","alert_id")
);
--> statement-breakpoint
CREATE TABLE "charging_sessions" (
	"fleet_id" text NOT NULL,
	"drone_id" text NOT NULL,
	"start_time" timestamp with time zone NOT NULL,
	"end_time" timestamp with time zone NOT NULL,
	"start_battery_percentage" double precision NOT NULL,
	"end_battery_percentage" double precision NOT NULL,
	CONSTRAINT "charging_sessions_fleet_id_drone_id_start_time_pk" PRIMARY KEY("fleet_id","drone_id","start_time")
);
--> statement-breakpoint
CREATE TABLE "command_audit" (
	"fleet_id" text NOT NULL,
	"command_id" text NOT NULL,
	"command" text NOT NULL,
	"drone_id" text,
	"sub" text NOT NULL,
	"role" text NOT NULL,
	"status" text NOT NULL,
	"code" text,
	"message" text,
	"params" jsonb NOT NULL,
	"relay_id" text,
	"received_at" timestamp with time zone NOT NULL,
	"sent_at" timestamp with time zone,
	"finished_at" timestamp with time zone,
	"latency_ms" integer,
	CONSTRAINT "command_audit_fleet_id_command_id_pk" PRIMARY KEY("fleet_id","command_id")
);
--> statement-breakpoint
CREATE TABLE "coordination_events" (
	"fleet_id" text NOT NULL,
	"event_id" text NOT NULL,
	"event_type" text NOT NULL,
	"drone_ids" jsonb NOT NULL,
	"strategy" text NOT NULL,
	"status" text NOT NULL,
	"created_at" timestamp with time zone NOT NULL,
	"first_command_at" timestamp with time zone,
	"resolved_at" timestamp with time zone,
	"resolution_time_ms" integer,
	"overridden_by" text,
	"time_to_conflict_s" double precision NOT NULL,
	"min_horizontal_m" double precision NOT NULL,
	"min_vertical_m" double precision NOT NULL,
	"attempts" integer NOT NULL,
	"updated_at" timestamp with time zone NOT NULL,
	CONSTRAINT "coordination_events_fleet_id_event_id_pk" PRIMARY KEY("fleet_id","event_id")
);
--> statement-breakpoint
CREATE TABLE "drone_telemetry_snapshots" (
	"fleet_id" text NOT NULL,
	"snapshot_time" timestamp with time zone NOT NULL,
	"drone_id" text NOT NULL,
	"lat" double precision NOT NULL,
	"lon" double precision NOT NULL,
	"alt_m" double precision NOT NULL,
	"battery_pct" double precision NOT NULL,
	"speed_mps" double precision NOT NULL,
	"status" text NOT NULL,
	"armed" boolean NOT NULL,
	"distance_traveled_m" double precision NOT NULL,
	CONSTRAINT "drone_telemetry_snapshots_fleet_id_snapshot_time_drone_id_pk" PRIMARY KEY("fleet_id","snapshot_time","drone_id")
);
--> statement-breakpoint
CREATE TABLE "hourly_analytics" (
	"fleet_id" text NOT NULL,
	"hour" timestamp with time zone NOT NULL,
	"missions_completed" integer NOT NULL,
	"successful_missions" integer NOT NULL,
	"failed_missions" integer NOT NULL,
	"aborted_missions" integer NOT NULL,
	"avg_duration_minutes" double precision,
	"charging_sessions" integer NOT NULL,
	"avg_charge_gained" double precision,
	"avg_charging_time_minutes" double precision,
	"coordination_events" integer NOT NULL,
	"coordination" jsonb NOT NULL,
	"avg_resolution_time_ms" double precision,
	"fleet_size" integer NOT NULL,
	"fleet_utilization_percentage" double precision,
	"snapshots_received" integer NOT NULL,
	"snapshots_expected" integer NOT NULL,
	"data_completeness" double precision,
	"alerts_raised" integer NOT NULL,
	"commands" integer NOT NULL,
	"commands_failed" integer NOT NULL,
	"computed_at" timestamp with time zone NOT NULL,
	CONSTRAINT "hourly_analytics_fleet_id_hour_pk" PRIMARY KEY("fleet_id","hour")
);
--> statement-breakpoint
CREATE TABLE "insights" (
	"fleet_id" text NOT NULL,
	"hour" timestamp with time zone NOT NULL,
	"rule" text NOT NULL,
	"subject" text NOT NULL,
	"severity" text NOT NULL,
	"message" text NOT NULL,
	"data" jsonb NOT NULL,
	"created_at" timestamp with time zone NOT NULL,
	CONSTRAINT "insights_fleet_id_hour_rule_subject_pk" PRIMARY KEY("fleet_id","hour","rule","subject")
);
--> statement-breakpoint
CREATE TABLE "missions" (
	"fleet_id" text NOT NULL,
	"mission_id" text NOT NULL,
	"drone_id" text NOT NULL,
	"command_id" text NOT NULL,
	"status" text NOT NULL,
	"priority" text NOT NULL,
	"waypoint_count" integer NOT NULL,
	"created_at" timestamp with time zone NOT NULL,
	"assigned_at" timestamp with time zone,
	"started_at" timestamp with time zone,
	"completed_at" timestamp with time zone,
	"actual_duration_minutes" double precision,
	"message" text,
	"updated_at" timestamp with time zone NOT NULL,
	CONSTRAINT "missions_fleet_id_mission_id_pk" PRIMARY KEY("fleet_id","mission_id")
);
--> statement-breakpoint
CREATE TABLE "performance_metrics" (
	"fleet_id" text NOT NULL,
	"ts" timestamp with time zone NOT NULL,
	"active_drones" integer NOT NULL,
	"total_drones" integer NOT NULL,
	"live_drones" integer NOT NULL,
	"fleet_battery_average" double precision NOT NULL,
	"active_missions" integer NOT NULL,
	"coordination_events_active" integer NOT NULL,
	"fleet_utilization_percentage" double precision NOT NULL,
	"emergency_status" text NOT NULL,
	"alerts_active" integer NOT NULL,
	CONSTRAINT "performance_metrics_fleet_id_ts_pk" PRIMARY KEY("fleet_id","ts")
);
--> statement-breakpoint
CREATE TABLE "trend_analysis" (
	"fleet_id" text NOT NULL,
	"hour" timestamp with time zone NOT NULL,
	"metric" text NOT NULL,
	"value" double precision,
	"previous_hour_value" double precision,
	"previous_hour_change_pct" double precision,
	"yesterday_value" double precision,
	"yesterday_change_pct" double precision,
	CONSTRAINT "trend_analysis_fleet_id_hour_metric_pk" PRIMARY KEY("fleet_id","hour","metric")
);
--> statement-breakpoint
ALTER TABLE "alerts" ADD CONSTRAINT "alerts_fleet_id_fleets_id_fk" FOREIGN KEY ("fleet_id") REFERENCES "public"."fleets"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "charging_sessions" ADD CONSTRAINT "charging_sessions_fleet_id_fleets_id_fk" FOREIGN KEY ("fleet_id") REFERENCES "public"."fleets"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "command_audit" ADD CONSTRAINT "command_audit_fleet_id_fleets_id_fk" FOREIGN KEY ("fleet_id") REFERENCES "public"."fleets"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "coordination_events" ADD CONSTRAINT "coordination_events_fleet_id_fleets_id_fk" FOREIGN KEY ("fleet_id") REFERENCES "public"."fleets"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "drone_telemetry_snapshots" ADD CONSTRAINT "drone_telemetry_snapshots_fleet_id_fleets_id_fk" FOREIGN KEY ("fleet_id") REFERENCES "public"."fleets"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "hourly_analytics" ADD CONSTRAINT "hourly_analytics_fleet_id_fleets_id_fk" FOREIGN KEY ("fleet_id") REFERENCES "public"."fleets"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "insights" ADD CONSTRAINT "insights_fleet_id_fleets_id_fk" FOREIGN KEY ("fleet_id") REFERENCES "public"."fleets"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "missions" ADD CONSTRAINT "missions_fleet_id_fleets_id_fk" FOREIGN KEY ("fleet_id") REFERENCES "public"."fleets"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "performance_metrics" ADD CONSTRAINT "performance_metrics_fleet_id_fleets_id_fk" FOREIGN KEY ("fleet_id") REFERENCES "public"."fleets"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "trend_analysis" ADD CONSTRAINT "trend_analysis_fleet_id_fleets_id_fk" FOREIGN KEY ("fleet_id") REFERENCES "public"."fleets"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "alerts_fleet_raised" ON "alerts" USING btree ("fleet_id","raised_at");--> statement-breakpoint
CREATE INDEX "charging_sessions_fleet_start" ON "charging_sessions" USING btree ("fleet_id","start_time");--> statement-breakpoint
CREATE INDEX "command_audit_fleet_received" ON "command_audit" USING btree ("fleet_id","received_at");--> statement-breakpoint
CREATE INDEX "coordination_events_fleet_created" ON "coordination_events" USING btree ("fleet_id","created_at");--> statement-breakpoint
CREATE INDEX "missions_fleet_completed" ON "missions" USING btree ("fleet_id","completed_at");